-- Half-hourly meter (ICP) interval readings, as sent by the metering provider
-- (read_timestamp,interval_read,energy_flow_direction,icp_id). A re-sent reading for the same
-- (icp_id, read_at, direction) is a correction: it replaces the stored value (see
-- server/meters/readings-store.ts), hence the unique key, which must include read_at, the
-- partitioning column.
CREATE TABLE meter_readings (
  icp_id      text        NOT NULL CHECK (length(icp_id) BETWEEN 1 AND 64),
  read_at     timestamptz NOT NULL,              -- read_timestamp with its offset, as a UTC instant
  direction   text        NOT NULL CHECK (direction IN ('X', 'I')), -- energy_flow_direction
  kwh         numeric     NOT NULL,              -- interval_read, exactly as sent
  ingested_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT meter_readings_key UNIQUE (icp_id, read_at, direction)
);

-- ~200M rows per 14-day batch is ~14M rows a day: one-day chunks keep a chunk and its index
-- (~1-1.5 GB) within memory on a server, and let whole days be compressed or dropped.
-- The unique key (icp_id, read_at, direction) already serves "one ICP over a period"; the
-- default read_at index would only slow loading down.
SELECT create_hypertable('meter_readings', by_range('read_at', INTERVAL '1 day'), create_default_indexes => false);

-- Compression: one segment per ICP, ordered by time, so that one ICP's fortnight decompresses
-- alone. Chunks are compressed by server/meters/compression.ts (embedded PGlite has no job
-- scheduler, so a policy would never run there).
ALTER TABLE meter_readings SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'icp_id',
  timescaledb.compress_orderby = 'read_at, direction'
);
