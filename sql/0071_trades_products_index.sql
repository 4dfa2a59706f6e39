-- The delivery products of a trader's hours that traded something other than their plain hour
-- (quarter hours, other periods of quarter hours), for the PnL report: pnl_hourly has only hours.
--
-- A partial index of the trades that are not a plain UTC hour: a desk that trades mostly hours
-- has few or none, so finding out whether any hour needs its products costs an index probe, not
-- a scan of the trader's day. The function below repeats its predicate word for word, so that
-- the planner can use it.
CREATE INDEX trades_trader_products ON trades (trader_id, delivery_start)
  WHERE delivery_end - delivery_start <> INTERVAL '1 hour' OR time_bucket(INTERVAL '1 hour', delivery_start) <> delivery_start;

-- Every product of those hours, with its sums (energy = MW x the product's length, as in
-- pnl_hourly, so that the products of an hour add up to it). First the index probe: usually no
-- hour needs its products and nothing more is read. Otherwise one pass over the trader's day,
-- grouped by product, keeping the hours that have a product other than their plain hour: no
-- join whose plan would depend on statistics (fresh trades have none). Like pnl_hourly_between
-- (sql/0022) the bounds reach the queries as constants, quoted by the server: with bind
-- parameters TimescaleDB plans every chunk of trades (~20 ms a report at 10M trades).
CREATE FUNCTION pnl_products_between(p_trader_id text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (delivery_start timestamptz, delivery_end timestamptz, trades bigint, buy_mw numeric, sell_mw numeric, pnl_eur numeric)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  needed boolean;
BEGIN
  EXECUTE format($query$
    SELECT EXISTS (SELECT 1 FROM trades
      WHERE trader_id = %1$L AND delivery_start >= %2$L::timestamptz AND delivery_start < %3$L::timestamptz
        AND (delivery_end - delivery_start <> INTERVAL '1 hour' OR time_bucket(INTERVAL '1 hour', delivery_start) <> delivery_start))$query$,
    p_trader_id, p_from, p_to) INTO needed;
  IF NOT needed THEN
    RETURN;
  END IF;
  RETURN QUERY EXECUTE format($query$
    WITH products AS MATERIALIZED (
      SELECT t.delivery_start, t.delivery_end, count(*)::int8 AS trades,
        coalesce(sum(t.quantity) FILTER (WHERE t.direction = 'buy'), 0) AS buy_mw,
        coalesce(sum(t.quantity) FILTER (WHERE t.direction = 'sell'), 0) AS sell_mw,
        round(coalesce(sum(t.price * t.quantity * extract(epoch FROM t.delivery_end - t.delivery_start) / 3600) FILTER (WHERE t.direction = 'sell'), 0)
            - coalesce(sum(t.price * t.quantity * extract(epoch FROM t.delivery_end - t.delivery_start) / 3600) FILTER (WHERE t.direction = 'buy'), 0), 2) AS pnl_eur
      FROM trades t
      WHERE t.trader_id = %1$L AND t.delivery_start >= %2$L::timestamptz AND t.delivery_start < %3$L::timestamptz
      GROUP BY t.delivery_start, t.delivery_end)
    SELECT p.delivery_start, p.delivery_end, p.trades, p.buy_mw, p.sell_mw, p.pnl_eur FROM products p
    WHERE time_bucket(INTERVAL '1 hour', p.delivery_start) IN (
      SELECT time_bucket(INTERVAL '1 hour', o.delivery_start) FROM products o
      WHERE o.delivery_end - o.delivery_start <> INTERVAL '1 hour' OR time_bucket(INTERVAL '1 hour', o.delivery_start) <> o.delivery_start)
    ORDER BY p.delivery_start, p.delivery_end$query$,
    p_trader_id, p_from, p_to);
END
$$;
