-- Trading: cash accounts with an append-only ledger, orders with their holds and fills, the
-- outbox the dispatcher sends to the exchange, and the notifications kept for the inbox.

-- One account per trader_id (created at its first use, zero until funded). Cash is either
-- available or held for open buy orders; `owed` is what fills cost beyond the cash there was
-- (an exchange fill is a fact and is always booked). The CHECKs are the last line of defence:
-- no interleaving of requests can take available cash below zero.
CREATE TABLE accounts (
  trader_id      text           PRIMARY KEY,
  available      numeric(20, 2) NOT NULL DEFAULT 0 CHECK (available >= 0),
  held           numeric(20, 2) NOT NULL DEFAULT 0 CHECK (held >= 0),
  owed           numeric(20, 2) NOT NULL DEFAULT 0 CHECK (owed >= 0),
  short_limit_mw numeric(18, 1) CHECK (short_limit_mw >= 0),  -- null: the configured default
  created_at     timestamptz    NOT NULL,
  updated_at     timestamptz    NOT NULL
);

-- Every movement of an account's cash, append-only. `amount` changes available cash and
-- `held_amount` held cash: their sums over an account's entries are its balance.
CREATE TABLE ledger (
  id              bigserial      PRIMARY KEY,
  trader_id       text           NOT NULL REFERENCES accounts (trader_id),
  at              timestamptz    NOT NULL,
  kind            text           NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'hold', 'release', 'fill_cost', 'fill_proceeds')),
  amount          numeric(20, 2) NOT NULL,
  held_amount     numeric(20, 2) NOT NULL DEFAULT 0,
  owed_amount     numeric(20, 2) NOT NULL DEFAULT 0,
  available_after numeric(20, 2) NOT NULL,
  held_after      numeric(20, 2) NOT NULL,
  order_id        uuid,
  trade_id        text,
  memo            text
);
CREATE INDEX ledger_trader ON ledger (trader_id, id);
CREATE INDEX ledger_order ON ledger (order_id) WHERE order_id IS NOT NULL;

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the ledger is append-only';
END
$$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TABLE orders (
  id                uuid           PRIMARY KEY,
  client_order_id   text           NOT NULL,
  trader_id         text           NOT NULL REFERENCES accounts (trader_id),
  side              text           NOT NULL CHECK (side IN ('buy', 'sell')),
  type              text           NOT NULL CHECK (type IN ('limit', 'market')),
  time_in_force     text           NOT NULL CHECK (time_in_force IN ('gtc', 'ioc', 'fok')),
  delivery_day      date           NOT NULL,
  delivery_start    timestamptz    NOT NULL,
  delivery_end      timestamptz    NOT NULL,
  quantity          numeric(18, 1) NOT NULL CHECK (quantity > 0),        -- MW
  limit_price       numeric(14, 2),                                      -- EUR/MWh; null for market orders
  status            text           NOT NULL CHECK (status IN ('pending_new', 'new', 'partially_filled', 'filled', 'pending_cancel', 'canceled', 'pending_replace', 'rejected', 'expired')),
  filled_quantity   numeric(18, 6) NOT NULL DEFAULT 0 CHECK (filled_quantity >= 0),
  filled_value      numeric(24, 8) NOT NULL DEFAULT 0,                   -- Σ price × MW of the fills (avg_fill_price = value / quantity)
  held              numeric(20, 2) NOT NULL DEFAULT 0 CHECK (held >= 0),   -- cash held now (buys)
  held_mw           numeric(18, 6) NOT NULL DEFAULT 0 CHECK (held_mw >= 0), -- quantity held now (sells)
  -- A replace the exchange has not answered yet, and the status to go back to when it is refused.
  pending_quantity  numeric(18, 1),
  pending_limit     numeric(14, 2),
  resume_status     text,
  reject_reason     text,
  exchange_order_id text,
  content           jsonb          NOT NULL,                             -- the placement as requested (idempotent repeats compare it)
  created_at        timestamptz    NOT NULL,
  updated_at        timestamptz    NOT NULL,
  UNIQUE (trader_id, client_order_id)
);
CREATE INDEX orders_trader ON orders (trader_id, created_at DESC, id DESC);
CREATE INDEX orders_open ON orders (delivery_start) WHERE status IN ('pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace');
CREATE INDEX orders_product_open ON orders (trader_id, delivery_start, delivery_end) WHERE status IN ('pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace');

-- Quantity held by open sells per trader and product, against what may be sold there: the long
-- position plus the short limit, as computed when the hold was last changed (under the
-- account's row lock). The CHECK keeps sellable quantity from going negative.
CREATE TABLE sell_holds (
  trader_id      text           NOT NULL REFERENCES accounts (trader_id),
  delivery_start timestamptz    NOT NULL,
  delivery_end   timestamptz    NOT NULL,
  held_mw        numeric(18, 6) NOT NULL CHECK (held_mw >= 0),
  sellable_mw    numeric(18, 6) NOT NULL,
  PRIMARY KEY (trader_id, delivery_start, delivery_end),
  CHECK (held_mw = 0 OR held_mw <= sellable_mw)
);

-- Fills by the exchange's deal id: each is applied once, whichever message brings it first.
CREATE TABLE order_fills (
  deal_id   text           PRIMARY KEY,
  order_id  uuid           NOT NULL REFERENCES orders (id),
  price     numeric(14, 2) NOT NULL,
  quantity  numeric(18, 6) NOT NULL CHECK (quantity > 0),
  at        timestamptz    NOT NULL,
  seq       bigint
);
CREATE INDEX order_fills_order ON order_fills (order_id, at);

-- Messages for the exchange (and, with RabbitMQ, domain events for other services), written in
-- the transaction that made them. Dispatchers claim them with FOR UPDATE SKIP LOCKED and a lease.
CREATE TABLE outbox (
  id            bigserial   PRIMARY KEY,
  destination   text        NOT NULL CHECK (destination IN ('exchange', 'events')),
  order_id      uuid,
  routing_key   text,
  frame         jsonb       NOT NULL,
  created_at    timestamptz NOT NULL,
  claimed_until timestamptz,
  claimed_by    text,
  attempts      integer     NOT NULL DEFAULT 0,
  sent_at       timestamptz,
  last_error    text
);
CREATE INDEX outbox_unsent ON outbox (destination, id) WHERE sent_at IS NULL;

-- What traders are told (placement, fills, cancels, expiry, rejects, balance changes); the inbox.
CREATE TABLE notifications (
  id        bigserial   PRIMARY KEY,
  trader_id text        NOT NULL,
  at        timestamptz NOT NULL,
  kind      text        NOT NULL,
  text      text        NOT NULL,
  order_id  uuid,
  read_at   timestamptz
);
CREATE INDEX notifications_trader ON notifications (trader_id, id DESC);
