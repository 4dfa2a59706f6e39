-- PnL per trader and delivery hour, as a continuous aggregate over trades. Values are kept as
-- exact numerics; the report derives PnL, VWAP, net position and mark-to-market from them.
-- energy = quantity (MW) x period length (h), so quarter-hour products weigh a quarter of an hour.
-- Buckets are UTC hours: every local hour of a market zone with whole-hour offsets (Europe/*)
-- is exactly one bucket.
-- Real-time aggregation is on (materialized_only = false): buckets above the watermark are read
-- from the raw trades, so a deal shows in the report as soon as it is committed; the server
-- materialises past days and refreshes the windows that late deals touch (server/reports/freshness.ts).
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
GROUP BY trader_id, time_bucket(INTERVAL '1 hour', delivery_start)
WITH NO DATA;

CREATE INDEX pnl_hourly_trader_bucket ON pnl_hourly (trader_id, bucket);
