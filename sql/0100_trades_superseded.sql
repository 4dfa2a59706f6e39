-- The exchange (its feed and its nightly file) is the authority on deal ids. A manual entry
-- (REST API) that used an id the exchange then confirms with other content gives way: the
-- exchange's deal is stored and the manual entry moves here, with when and by what.
CREATE TABLE trades_superseded (
  id             text           NOT NULL,
  trader_id      text           NOT NULL,
  direction      text           NOT NULL,
  price          numeric(14, 2) NOT NULL,
  quantity       numeric(18, 6) NOT NULL,
  delivery_day   date           NOT NULL,
  delivery_start timestamptz    NOT NULL,
  delivery_end   timestamptz    NOT NULL,
  execution_time timestamptz    NOT NULL,
  source         text           NOT NULL,  -- how the superseded entry arrived (api)
  received_at    timestamptz    NOT NULL,  -- when it arrived
  superseded_at  timestamptz    NOT NULL,
  superseded_by  text           NOT NULL,  -- the exchange's source that replaced it (feed, file)
  exchange_trader_id text       NOT NULL,  -- the trader the exchange named
  differences    text[]         NOT NULL   -- the API fields in which the two differed
);
CREATE INDEX trades_superseded_id ON trades_superseded (id);
CREATE INDEX trades_superseded_trader ON trades_superseded (trader_id, superseded_at);

-- A gateway that cannot store what the exchange sends says so (cleared by its next commit).
ALTER TABLE feed_gateways ADD COLUMN store_failing_since timestamptz, ADD COLUMN store_error text;
