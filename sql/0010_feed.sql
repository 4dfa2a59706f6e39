-- The exchange gateway's own records: every connected and disconnected interval, its counters,
-- the messages it could not use (dead letters) and deals that came again with other content.

-- One row per interval in which a gateway was connected or disconnected; `ended_at` is null
-- while the interval lasts. Feed status is computed from the connected rows of all gateways.
CREATE TABLE feed_intervals (
  id          bigserial   PRIMARY KEY,
  gateway_id  text        NOT NULL,
  state       text        NOT NULL CHECK (state IN ('connected', 'disconnected')),
  started_at  timestamptz NOT NULL,
  ended_at    timestamptz,
  reason      text
);
CREATE INDEX feed_intervals_started ON feed_intervals (started_at);
CREATE INDEX feed_intervals_open ON feed_intervals (gateway_id) WHERE ended_at IS NULL;

-- Counters per gateway process, written after every batch; `seen_at` is its liveness beat
-- (a connected interval of a gateway that stopped beating counts as ended at its last beat).
CREATE TABLE feed_gateways (
  gateway_id      text        PRIMARY KEY,
  url             text        NOT NULL,
  received        bigint      NOT NULL DEFAULT 0,
  stored          bigint      NOT NULL DEFAULT 0,
  duplicates      bigint      NOT NULL DEFAULT 0,
  conflicts       bigint      NOT NULL DEFAULT 0,
  dead_lettered   bigint      NOT NULL DEFAULT 0,
  last_message_at timestamptz,
  seen_at         timestamptz NOT NULL
);

CREATE TABLE feed_dead_letters (
  id          bigserial   PRIMARY KEY,
  gateway_id  text        NOT NULL,
  received_at timestamptz NOT NULL,
  raw         text        NOT NULL,  -- the frame exactly as received
  reason      text        NOT NULL   -- names the field and why, e.g. "deal_confirmation.quantity: ..."
);
CREATE INDEX feed_dead_letters_received ON feed_dead_letters (received_at DESC, id DESC);

-- A deal id that came again with other content: both versions are kept, the stored one wins.
CREATE TABLE feed_conflicts (
  id          bigserial   PRIMARY KEY,
  deal_id     text        NOT NULL,
  gateway_id  text        NOT NULL,
  detected_at timestamptz NOT NULL,
  differences text[]      NOT NULL,
  stored      jsonb,
  received    jsonb       NOT NULL,
  raw         text        NOT NULL
);
CREATE INDEX feed_conflicts_deal ON feed_conflicts (deal_id);
