-- One database and one role per service; a service's role cannot connect to another's database.
-- `operator` (lotse) reads all three and writes none. Used by the local stack and by
-- docker-compose's postgres init. Idempotent; every run sets the passwords again, so that a new
-- password file takes effect on the next `make up`.
--
-- The passwords come from the environment of psql (never from this file, never on a command
-- line): PG_PASSWORD_<ROLE>, either the password or its scram-sha-256 verifier (the local stack
-- sends verifiers, so that the server never sees a password it could log).
\set ON_ERROR_STOP on
\getenv registration_password PG_PASSWORD_REGISTRATION
\getenv funding_password PG_PASSWORD_FUNDING
\getenv notification_password PG_PASSWORD_NOTIFICATION
\getenv operator_password PG_PASSWORD_OPERATOR

SET password_encryption = 'scram-sha-256';

SELECT 'CREATE ROLE registration LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registration')\gexec
SELECT 'CREATE ROLE funding LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'funding')\gexec
SELECT 'CREATE ROLE notification LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'notification')\gexec
SELECT 'CREATE ROLE operator LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'operator')\gexec

ALTER ROLE registration LOGIN PASSWORD :'registration_password';
ALTER ROLE funding LOGIN PASSWORD :'funding_password';
ALTER ROLE notification LOGIN PASSWORD :'notification_password';
ALTER ROLE operator LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'operator_password';

SELECT 'CREATE DATABASE registration OWNER registration'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'registration')\gexec
SELECT 'CREATE DATABASE funding OWNER funding'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'funding')\gexec
SELECT 'CREATE DATABASE notification OWNER notification'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'notification')\gexec

-- No role connects anywhere by default; the superuser needs no grant.
REVOKE CONNECT, TEMPORARY ON DATABASE registration FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE funding FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE notification FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
GRANT CONNECT ON DATABASE registration TO registration;
GRANT CONNECT ON DATABASE funding TO funding;
GRANT CONNECT ON DATABASE notification TO notification;

-- operator: SELECT on every table, now and later (pg_read_all_data), in the three databases only.
GRANT CONNECT ON DATABASE registration, funding, notification TO operator;
GRANT pg_read_all_data TO operator;
