-- One database and one role per service; a service's role cannot connect to another's database.
-- Used by the local provisioning and by docker-compose's postgres init. Idempotent.
SELECT 'CREATE ROLE registration LOGIN PASSWORD ''registration'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registration')\gexec
SELECT 'CREATE ROLE funding LOGIN PASSWORD ''funding'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'funding')\gexec
SELECT 'CREATE ROLE notification LOGIN PASSWORD ''notification'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'notification')\gexec

SELECT 'CREATE DATABASE registration OWNER registration'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'registration')\gexec
SELECT 'CREATE DATABASE funding OWNER funding'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'funding')\gexec
SELECT 'CREATE DATABASE notification OWNER notification'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'notification')\gexec

REVOKE CONNECT, TEMPORARY ON DATABASE registration FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE funding FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE notification FROM PUBLIC;
GRANT CONNECT ON DATABASE registration TO registration;
GRANT CONNECT ON DATABASE funding TO funding;
GRANT CONNECT ON DATABASE notification TO notification;
