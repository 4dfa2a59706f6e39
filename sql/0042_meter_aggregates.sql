-- Daily continuous aggregates. Days are local days in Pacific/Auckland (the readings' +12/+13
-- offsets; METER_TZ's default): a bucket starts at local midnight. Created WITH NO DATA and
-- refreshed by the server after each upload (embedded PGlite runs no refresh policies).
CREATE MATERIALIZED VIEW meter_readings_daily
WITH (timescaledb.continuous) AS
SELECT icp_id,
       direction,
       time_bucket(INTERVAL '1 day', read_at, 'Pacific/Auckland') AS day,
       sum(kwh)  AS kwh,
       count(*)  AS readings
FROM meter_readings
GROUP BY icp_id, direction, time_bucket(INTERVAL '1 day', read_at, 'Pacific/Auckland')
WITH NO DATA;

CREATE MATERIALIZED VIEW match_results_daily
WITH (timescaledb.continuous) AS
SELECT run_id,
       icp_id,
       role,
       time_bucket(INTERVAL '1 day', interval_start, 'Pacific/Auckland') AS day,
       sum(matched_amount) AS matched_amount,
       count(*)            AS intervals
FROM match_results
GROUP BY run_id, icp_id, role, time_bucket(INTERVAL '1 day', interval_start, 'Pacific/Auckland')
WITH NO DATA;

CREATE INDEX match_results_daily_icp ON match_results_daily (icp_id, day);

-- Read-only role for analysts (psql, notebooks, Grafana): LOGIN users are granted it.
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst_ro') THEN CREATE ROLE analyst_ro NOLOGIN; END IF; END $$;
GRANT USAGE ON SCHEMA public TO analyst_ro;
GRANT SELECT ON meter_readings, algorithm_runs, match_results, algorithm_runs_published, match_results_current,
  meter_readings_daily, match_results_daily TO analyst_ro;
