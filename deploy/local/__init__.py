"""Local provisioning: Kafka (KRaft), PostgreSQL and an SMTP sink under var/, on loopback only."""
