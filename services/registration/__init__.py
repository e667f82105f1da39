"""The registration service: system of record for seminar offers and registrations."""
