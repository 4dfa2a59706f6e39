-- Every deal of the desk, whatever its source (exchange feed, nightly file, REST API),
-- normalised: exact decimals, delivery period as UTC instants, when and how it arrived.
CREATE TABLE trades (
  id             text        NOT NULL,
  trader_id      text        NOT NULL,
  direction      text        NOT NULL CHECK (direction IN ('buy', 'sell')),
  price          numeric(14, 2) NOT NULL,              -- EUR/MWh
  quantity       numeric(18, 6) NOT NULL CHECK (quantity > 0), -- MW
  delivery_day   date        NOT NULL,                 -- local market day (MARKET_TZ)
  delivery_start timestamptz NOT NULL,
  delivery_end   timestamptz NOT NULL,
  execution_time timestamptz NOT NULL,
  source         text        NOT NULL CHECK (source IN ('feed', 'file', 'api')),
  received_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (delivery_end > delivery_start),
  UNIQUE (id, delivery_start)
);

SELECT create_hypertable('trades', by_range('delivery_start', INTERVAL '7 days'));

CREATE INDEX trades_trader_delivery ON trades (trader_id, delivery_start);

-- The exchange's deal id is the idempotency key across all sources and processes. A hypertable
-- cannot have a unique index without its partitioning column, so the key lives here: inserting
-- into this table first makes concurrent ingesters (several gateways, importer, API) agree on
-- who stored a deal, and where to find it.
CREATE TABLE trade_keys (
  id             text        PRIMARY KEY,
  delivery_start timestamptz NOT NULL,
  first_source   text        NOT NULL,
  first_seen_at  timestamptz NOT NULL DEFAULT now()
);
