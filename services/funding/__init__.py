"""The funding service: decides funding for accepted registrations under a programme's rules."""
