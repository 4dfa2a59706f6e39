-- The delivery products of a trader's hours that traded something other than their plain hour
-- (quarter hours, other periods of quarter hours), for the PnL report: pnl_hourly has only hours.
--
-- A partial index of the trades that are not a plain UTC hour: a desk that trades mostly hours
-- has few or none, so listing the products costs an index probe, not a scan of the trader's day.
-- The function below repeats its predicate word for word, so that the planner can use it.
CREATE INDEX trades_trader_products ON trades (trader_id, delivery_start)
  WHERE delivery_end - delivery_start <> INTERVAL '1 hour' OR time_bucket(INTERVAL '1 hour', delivery_start) <> delivery_start;

-- Every product of those hours, with its sums (energy = MW x the product's length, as in
-- pnl_hourly; like pnl_hourly, without the deals the exchange recalled: trades.recalled_at, added
-- by sql/0080, is read when the query runs). Only the trades that are not a plain hour are read, through the index above; the
-- plain hour's product of such an hour is what remains of the hour's pnl_hourly row, so that the
-- products of an hour add up to it exactly. Every join is over a few dozen rows (functions and
-- CTEs), so no plan depends on statistics (fresh trades have none). Like pnl_hourly_between
-- (sql/0022) the bounds reach the query as constants, quoted by the server: with bind
-- parameters TimescaleDB plans every chunk of trades (~20 ms a report at 10M trades).
CREATE FUNCTION pnl_products_between(p_trader_id text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (delivery_start timestamptz, delivery_end timestamptz, trades bigint, buy_mw numeric, sell_mw numeric, pnl_eur numeric)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN QUERY EXECUTE format($query$
    WITH other AS MATERIALIZED (
      SELECT t.delivery_start, t.delivery_end, count(*)::int8 AS trades,
        coalesce(sum(t.quantity) FILTER (WHERE t.direction = 'buy'), 0) AS buy_mw,
        coalesce(sum(t.quantity) FILTER (WHERE t.direction = 'sell'), 0) AS sell_mw,
        coalesce(sum(t.price * t.quantity * extract(epoch FROM t.delivery_end - t.delivery_start) / 3600) FILTER (WHERE t.direction = 'buy'), 0) AS buy_eur,
        coalesce(sum(t.price * t.quantity * extract(epoch FROM t.delivery_end - t.delivery_start) / 3600) FILTER (WHERE t.direction = 'sell'), 0) AS sell_eur
      FROM trades t
      WHERE t.trader_id = %1$L AND t.delivery_start >= %2$L::timestamptz AND t.delivery_start < %3$L::timestamptz
        AND (t.delivery_end - t.delivery_start <> INTERVAL '1 hour' OR time_bucket(INTERVAL '1 hour', t.delivery_start) <> t.delivery_start)
        AND t.recalled_at IS NULL
      GROUP BY t.delivery_start, t.delivery_end),
    per_hour AS MATERIALIZED (
      SELECT time_bucket(INTERVAL '1 hour', o.delivery_start) AS bucket, sum(o.trades) AS trades, sum(o.buy_mw) AS buy_mw,
        sum(o.sell_mw) AS sell_mw, sum(o.buy_eur) AS buy_eur, sum(o.sell_eur) AS sell_eur
      FROM other o GROUP BY 1),
    -- pnl_hourly is read once, over the hours with products, and not at all when there are none.
    span AS (SELECT min(bucket) AS lo, max(bucket) + INTERVAL '1 hour' AS hi FROM per_hour HAVING count(*) > 0),
    hourly AS MATERIALIZED (SELECT a.* FROM span s CROSS JOIN LATERAL pnl_hourly_between(%1$L::text, s.lo, s.hi) a),
    plain AS (
      SELECT a.bucket AS delivery_start, a.bucket + INTERVAL '1 hour' AS delivery_end, (a.trades - h.trades)::int8 AS trades,
        a.buy_mw - h.buy_mw AS buy_mw, a.sell_mw - h.sell_mw AS sell_mw, (a.sell_eur - h.sell_eur) - (a.buy_eur - h.buy_eur) AS pnl
      FROM per_hour h JOIN hourly a ON a.bucket = h.bucket)
    SELECT o.delivery_start, o.delivery_end, o.trades, o.buy_mw, o.sell_mw, round(o.sell_eur - o.buy_eur, 2) FROM other o
    UNION ALL
    SELECT p.delivery_start, p.delivery_end, p.trades, p.buy_mw, p.sell_mw, round(p.pnl, 2) FROM plain p WHERE p.trades > 0
    ORDER BY 1, 2$query$,
    p_trader_id, p_from, p_to);
END
$$;
