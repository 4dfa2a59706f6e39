-- Every observed value of the market-data provider's reference price (the average price of an
-- hour on the exchange). Values change during the day: each new last_update is a new row. An
-- hour with no row has no reference price (undefined, never 0).
CREATE TABLE reference_prices (
  delivery_start timestamptz    NOT NULL,
  delivery_end   timestamptz    NOT NULL,
  delivery_day   date           NOT NULL,  -- local market day (MARKET_TZ)
  value          numeric(14, 4) NOT NULL,  -- in `unit`, normally EUR/MWh
  unit           text           NOT NULL,
  last_update    timestamptz    NOT NULL,  -- the provider's timestamp of this value
  observed_at    timestamptz    NOT NULL DEFAULT now(),
  UNIQUE (delivery_start, last_update)
);

SELECT create_hypertable('reference_prices', by_range('delivery_start', INTERVAL '30 days'));

-- The latest value per hour: what reports and the API show.
CREATE VIEW reference_prices_latest AS
SELECT DISTINCT ON (delivery_start) delivery_start, delivery_end, delivery_day, value, unit, last_update, observed_at
FROM reference_prices
ORDER BY delivery_start, last_update DESC;
