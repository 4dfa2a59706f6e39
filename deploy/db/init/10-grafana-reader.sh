#!/bin/sh
# First start of the database volume only (docker-entrypoint-initdb.d): Grafana's login, a member
# of the read-only role analyst_ro. The migrations create that role too (idempotently) and grant it
# SELECT on the tables, views and aggregates analysts read.
set -eu
: "${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD must be set for the grafana login}"
psql -v ON_ERROR_STOP=1 -v pw="$GRAFANA_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst_ro') THEN CREATE ROLE analyst_ro NOLOGIN; END IF; END $$;
SELECT format('CREATE ROLE grafana LOGIN PASSWORD %L IN ROLE analyst_ro', :'pw') \gexec
ALTER ROLE grafana SET default_transaction_read_only = on;
ALTER ROLE grafana SET statement_timeout = '30s';
SQL
