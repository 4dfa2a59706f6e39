-- The delivery products of a trader's hours that traded something other than their plain hour
-- (quarter hours, other periods of quarter hours), for the PnL report: pnl_hourly has only hours.
--
-- A partial index of the trades that are not a plain UTC hour: a desk that trades mostly hours
-- has few or none, so finding the hours that need their products costs an index probe, not a
-- scan of the trader's day. The function below repeats its predicate word for word, so that the
-- planner can use it.
CREATE INDEX trades_trader_products ON trades (trader_id, delivery_start)
  WHERE delivery_end - delivery_start <> INTERVAL '1 hour' OR time_bucket(INTERVAL '1 hour', delivery_start) <> delivery_start;

-- Every product of those hours, with the hour's sums per product (energy = MW x the product's
-- length, as in pnl_hourly, so that the products of an hour add up to it). Like
-- pnl_hourly_between (sql/0022) the bounds reach the query as constants, quoted by the server:
-- with bind parameters TimescaleDB plans every chunk of trades (~20 ms a report at 10M trades
-- instead of a few).
CREATE FUNCTION pnl_products_between(p_trader_id text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (delivery_start timestamptz, delivery_end timestamptz, trades bigint, buy_mw numeric, sell_mw numeric, pnl_eur numeric)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN QUERY EXECUTE format($query$
    WITH hours AS (
      SELECT DISTINCT time_bucket(INTERVAL '1 hour', delivery_start) AS bucket FROM trades
      WHERE trader_id = %1$L AND delivery_start >= %2$L::timestamptz AND delivery_start < %3$L::timestamptz
        AND (delivery_end - delivery_start <> INTERVAL '1 hour' OR time_bucket(INTERVAL '1 hour', delivery_start) <> delivery_start))
    SELECT t.delivery_start, t.delivery_end, count(*)::int8,
      coalesce(sum(t.quantity) FILTER (WHERE t.direction = 'buy'), 0),
      coalesce(sum(t.quantity) FILTER (WHERE t.direction = 'sell'), 0),
      round(coalesce(sum(t.price * t.quantity * extract(epoch FROM t.delivery_end - t.delivery_start) / 3600) FILTER (WHERE t.direction = 'sell'), 0)
          - coalesce(sum(t.price * t.quantity * extract(epoch FROM t.delivery_end - t.delivery_start) / 3600) FILTER (WHERE t.direction = 'buy'), 0), 2)
    FROM hours h JOIN trades t
      ON t.trader_id = %1$L AND t.delivery_start >= %2$L::timestamptz AND t.delivery_start < %3$L::timestamptz
     AND t.delivery_start >= h.bucket AND t.delivery_start < h.bucket + INTERVAL '1 hour'
    GROUP BY t.delivery_start, t.delivery_end
    ORDER BY t.delivery_start, t.delivery_end$query$,
    p_trader_id, p_from, p_to);
END
$$;
