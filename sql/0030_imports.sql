-- Nightly trades files: one row per delivery of a file, its batches as uploaded through
-- POST /v1/trades/batch, the deal ids it contained and the rows that disagreed with a stored
-- trade, then the reconciliation against what the live feed delivered.
CREATE TABLE imports (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  file_name    text        NOT NULL,
  sha256       text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size_bytes   bigint      NOT NULL,
  trading_day  date        NOT NULL,              -- from the file name: the day the trades were executed
  status       text        NOT NULL CHECK (status IN ('running', 'done', 'failed', 'identical')),
  same_as      bigint      REFERENCES imports (id), -- for 'identical': the import that already read this content
  rows         integer,                           -- data rows in the file (header and empty lines excluded)
  rejected     integer,                           -- rows refused by validation (see the rejects file)
  message      text,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz
);
-- One reading of a given content at a time, and once it is done never again.
CREATE UNIQUE INDEX imports_content_once ON imports (sha256) WHERE status IN ('running', 'done');
CREATE INDEX imports_trading_day ON imports (trading_day, id);

-- Per uploaded batch, keyed by the file line of its first row: a batch re-sent after a restart or
-- a lost response is counted once (the first answer wins), and a restarted importer skips the
-- line ranges listed here. The batch's deal ids are kept as one array (the reconciliation needs
-- the file's ids to find feed trades it lacks): one row per batch instead of one per trade keeps
-- the upload path cheap.
CREATE TABLE import_batches (
  import_id  bigint  NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
  first_line integer NOT NULL,
  last_line  integer NOT NULL,
  received   integer NOT NULL,
  stored     integer NOT NULL,
  duplicates integer NOT NULL,
  conflicts  integer NOT NULL,
  invalid    integer NOT NULL,
  trade_ids  text[]  NOT NULL, -- the valid rows' deal ids
  PRIMARY KEY (import_id, first_line)
);

-- File rows whose deal id was already stored with other content: the file's version is kept
-- here (the trades table holds the first version) so the reconciliation can show both values.
CREATE TABLE import_conflicts (
  import_id   bigint NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
  trade_id    text   NOT NULL,
  differences jsonb  NOT NULL, -- field names of the trades table, e.g. ["price"]
  file_trade  jsonb  NOT NULL, -- the row as an API Trade (price in eurocent, hour as start hour)
  PRIMARY KEY (import_id, trade_id)
);

CREATE TABLE reconciliations (
  import_id    bigint      PRIMARY KEY REFERENCES imports (id) ON DELETE CASCADE,
  trading_day  date        NOT NULL,
  computed_at  timestamptz NOT NULL,
  file_trades  integer     NOT NULL,
  feed_trades  integer     NOT NULL, -- feed trades executed on the trading day
  matched      integer     NOT NULL, -- in both, identical
  only_in_file integer     NOT NULL, -- the feed missed them
  only_in_feed integer     NOT NULL, -- executed that day per the feed, absent from the file
  different    integer     NOT NULL  -- in both with differing fields
);
CREATE INDEX reconciliations_day ON reconciliations (trading_day, import_id);

-- Only-in-feed and different items. Only-in-file ids are not copied here (a whole day when the
-- feed was down): the batches' trade_ids joined with trade_keys (first_source <> 'feed') give
-- them, and neither changes once written.
CREATE TABLE reconciliation_items (
  import_id bigint NOT NULL REFERENCES reconciliations (import_id) ON DELETE CASCADE,
  kind      text   NOT NULL CHECK (kind IN ('only_in_feed', 'different')),
  trade_id  text   NOT NULL,
  -- for 'different': [{"field": "price", "file": 2050, "feed": 2100}, ...] in API units
  fields    jsonb,
  PRIMARY KEY (import_id, kind, trade_id)
);
