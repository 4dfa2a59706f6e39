-- Every run of the matching algorithm is kept. Its results are uploaded while it is a draft;
-- publishing makes them visible. The "current" output for an instant is the latest published run
-- whose input period covers it (highest publication_seq); other runs stay readable by id.
CREATE SEQUENCE algorithm_run_publication_seq;

CREATE TABLE algorithm_runs (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  algorithm       text        NOT NULL CHECK (length(algorithm) BETWEEN 1 AND 100),
  version         text        NOT NULL CHECK (length(version) BETWEEN 1 AND 100),
  params          jsonb       NOT NULL DEFAULT '{}',
  input_from      timestamptz NOT NULL,
  input_to        timestamptz NOT NULL,
  status          text        NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  created_by      text,
  published_at    timestamptz,            -- the publish_datetime of the algorithm's output
  -- Order of publication: "latest published" and the pinned run set of pagination cursors use
  -- it, so that neither depends on clock resolution.
  publication_seq bigint UNIQUE,
  result_rows     bigint      NOT NULL DEFAULT 0,
  CHECK (input_to > input_from),
  CHECK ((status = 'published') = (published_at IS NOT NULL AND publication_seq IS NOT NULL))
);
CREATE INDEX algorithm_runs_publication ON algorithm_runs (publication_seq) WHERE status = 'published';

-- One row per run, ICP, half-hour interval and role. interval_start comes from the output's
-- read_date + read_time, local wall time in METER_TZ (default Pacific/Auckland).
CREATE TABLE match_results (
  run_id         bigint      NOT NULL,
  icp_id         text        NOT NULL,
  interval_start timestamptz NOT NULL,
  role           text        NOT NULL CHECK (role IN ('buyer', 'seller')),
  matched_amount numeric     NOT NULL,
  CONSTRAINT match_results_key UNIQUE (run_id, icp_id, interval_start, role)
);
SELECT create_hypertable('match_results', by_range('interval_start', INTERVAL '1 day'), create_default_indexes => false);
ALTER TABLE match_results SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'run_id, icp_id',
  timescaledb.compress_orderby = 'interval_start, role'
);

-- Published runs only, with their rank: what an analyst means by "the output".
CREATE VIEW algorithm_runs_published AS
SELECT id, algorithm, version, params, input_from, input_to, published_at, publication_seq, result_rows
FROM algorithm_runs WHERE status = 'published';

-- The current output: each result row of the latest published run covering its interval.
-- Fine for one ICP or a short period; the API computes the run segments once instead.
CREATE VIEW match_results_current AS
SELECT m.*
FROM match_results m
WHERE m.run_id = (
  SELECT r.id FROM algorithm_runs r
  WHERE r.status = 'published' AND m.interval_start >= r.input_from AND m.interval_start < r.input_to
  ORDER BY r.publication_seq DESC LIMIT 1
);
