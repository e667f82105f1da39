#!/bin/bash
# docker-entrypoint-initdb.d: the roles and databases of deploy/sql/init-roles.sql, with the
# passwords of the Docker secrets (psql reads them with \getenv, never from a command line).
set -eu
export PG_PASSWORD_REGISTRATION="$(cat /run/secrets/postgres_registration_password)"
export PG_PASSWORD_FUNDING="$(cat /run/secrets/postgres_funding_password)"
export PG_PASSWORD_NOTIFICATION="$(cat /run/secrets/postgres_notification_password)"
export PG_PASSWORD_OPERATOR="$(cat /run/secrets/postgres_operator_password)"
psql -v ON_ERROR_STOP=1 --username postgres --dbname postgres -f /etc/digitallotsen/init-roles.sql
