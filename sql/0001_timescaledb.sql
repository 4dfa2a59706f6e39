-- TimescaleDB provides hypertables, continuous aggregates and compression.
CREATE EXTENSION IF NOT EXISTS timescaledb;
