-- TimescaleDB already indexes a continuous aggregate on its group-by columns
-- (_materialized_hypertable_N_trader_id_bucket_idx on (trader_id, bucket DESC)); the index 0020
-- added by hand duplicates it and only costs refresh time. 0020 has landed elsewhere, so it is
-- dropped here rather than edited there.
DROP INDEX IF EXISTS _timescaledb_internal.pnl_hourly_trader_bucket;
