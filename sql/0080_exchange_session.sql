-- The exchange session (protocol version 2). Every message from the exchange carries a sequence
-- number per member; the gateway commits the highest contiguous one in the same transaction as
-- the data its messages produced, and resumes from it after any reconnect, restart or crash.

-- One row per member: the resume point. Redundant gateways share it; the batch transaction locks
-- the row, skips messages another gateway already committed and only ever moves it forward.
CREATE TABLE exchange_sessions (
  member        text        PRIMARY KEY,
  committed_seq bigint      NOT NULL DEFAULT 0 CHECK (committed_seq >= 0),
  exchange_seq  bigint      NOT NULL DEFAULT 0,  -- the highest seq seen from the exchange
  updated_at    timestamptz NOT NULL,
  resets        integer     NOT NULL DEFAULT 0,  -- times the exchange restarted its numbering below ours
  reset_at      timestamptz
);

-- Sequence numbers that did not arrive in order: asked again with `resume`, filled when the
-- committed seq reaches `to_seq`; `lost_at` when the exchange could not replay them.
CREATE TABLE exchange_gaps (
  id          bigserial   PRIMARY KEY,
  member      text        NOT NULL,
  gateway_id  text        NOT NULL,
  from_seq    bigint      NOT NULL,
  to_seq      bigint      NOT NULL CHECK (to_seq >= from_seq),
  detected_at timestamptz NOT NULL,
  filled_at   timestamptz,
  lost_at     timestamptz
);
CREATE INDEX exchange_gaps_open ON exchange_gaps (member, to_seq) WHERE filled_at IS NULL AND lost_at IS NULL;
CREATE INDEX exchange_gaps_detected ON exchange_gaps (detected_at);

-- Deals the exchange cancelled (mistrades). A recall is kept even when its deal has not arrived
-- yet: the deal is then stored as recalled. The trade row stays, marked by trades.recalled_at.
CREATE TABLE deal_recalls (
  id          text        PRIMARY KEY,   -- the exchange's deal id
  reason      text        NOT NULL,
  recalled_at timestamptz NOT NULL,      -- when the recall was received
  seq         bigint,
  gateway_id  text
);

ALTER TABLE trades ADD COLUMN recalled_at timestamptz;

-- The dead letter's sequence number, when it had one (its seq was committed all the same).
ALTER TABLE feed_dead_letters ADD COLUMN seq bigint;

-- Gateways: recall and replay counters; a stable identity per host, so a restart carries on in
-- the same row; and an advisory lock the gateway holds while it runs (its process is alive
-- exactly while the lock is held: a gateway killed with -9 is seen as gone at once).
ALTER TABLE feed_gateways
  ADD COLUMN recalls   bigint  NOT NULL DEFAULT 0,
  ADD COLUMN ignored   bigint  NOT NULL DEFAULT 0,  -- frames whose seq was already handled (replays, redeliveries)
  ADD COLUMN lock_key  integer,
  ADD COLUMN transport text;

-- The nightly file leaves recalled deals out: the reconciliation counts them apart.
ALTER TABLE reconciliations ADD COLUMN recalled integer NOT NULL DEFAULT 0;

-- pnl_hourly leaves recalled trades out. A continuous aggregate's query cannot be altered:
-- it is recreated (with the function that returns its rows), empty; the server materialises
-- past days again at start and real-time aggregation serves the rest meanwhile.
DROP FUNCTION pnl_hourly_between(text, timestamptz, timestamptz);
DROP MATERIALIZED VIEW pnl_hourly;

CREATE MATERIALIZED VIEW pnl_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
  trader_id,
  time_bucket(INTERVAL '1 hour', delivery_start) AS bucket,
  count(*) AS trades,
  coalesce(sum(quantity) FILTER (WHERE direction = 'buy'), 0) AS buy_mw,
  coalesce(sum(quantity) FILTER (WHERE direction = 'sell'), 0) AS sell_mw,
  coalesce(sum(quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'buy'), 0) AS buy_mwh,
  coalesce(sum(quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'sell'), 0) AS sell_mwh,
  coalesce(sum(price * quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'buy'), 0) AS buy_eur,
  coalesce(sum(price * quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'sell'), 0) AS sell_eur
FROM trades
WHERE recalled_at IS NULL
GROUP BY trader_id, time_bucket(INTERVAL '1 hour', delivery_start)
WITH NO DATA;

CREATE FUNCTION pnl_hourly_between(p_trader_id text, p_from timestamptz, p_to timestamptz)
RETURNS SETOF pnl_hourly
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT * FROM pnl_hourly WHERE bucket >= %L::timestamptz AND bucket < %L::timestamptz AND (%L::text IS NULL OR trader_id = %L::text)',
    p_from, p_to, p_trader_id, p_trader_id);
END
$$;
