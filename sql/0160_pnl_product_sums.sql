-- Running sums per trader and delivery product, kept exact in the transaction of every write to
-- trades: a stored trade adds its row, a superseded manual entry and a recalled deal subtract
-- theirs (server/trades/pnl-sums.ts). The sums are those of pnl_hourly, per product instead of
-- per hour, with the same expressions, so that the products of an hour add up to the hour's
-- pnl_hourly row exactly (test/pnl-sums.test.ts compares them).
--
-- Today's and future deliveries are not materialised in pnl_hourly: reading them from it means
-- aggregating the raw trades at every read (real-time aggregation), which under a busy feed and
-- many readers of the same day costs seconds. The report reads these sums for those days instead:
-- a few rows per hour, whatever the number of trades. Past days are read from pnl_hourly.
CREATE TABLE pnl_product_sums (
  trader_id      text        NOT NULL,
  delivery_start timestamptz NOT NULL,
  delivery_end   timestamptz NOT NULL,
  trades         bigint      NOT NULL,
  buy_mw         numeric     NOT NULL,
  sell_mw        numeric     NOT NULL,
  buy_mwh        numeric     NOT NULL,
  sell_mwh       numeric     NOT NULL,
  buy_eur        numeric     NOT NULL,
  sell_eur       numeric     NOT NULL,
  PRIMARY KEY (trader_id, delivery_start, delivery_end)
);

-- The desk view reads every trader of a day.
CREATE INDEX pnl_product_sums_start ON pnl_product_sums (delivery_start);

INSERT INTO pnl_product_sums (trader_id, delivery_start, delivery_end, trades, buy_mw, sell_mw, buy_mwh, sell_mwh, buy_eur, sell_eur)
SELECT
  trader_id, delivery_start, delivery_end,
  count(*),
  coalesce(sum(quantity) FILTER (WHERE direction = 'buy'), 0),
  coalesce(sum(quantity) FILTER (WHERE direction = 'sell'), 0),
  coalesce(sum(quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'buy'), 0),
  coalesce(sum(quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'sell'), 0),
  coalesce(sum(price * quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'buy'), 0),
  coalesce(sum(price * quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'sell'), 0)
FROM trades
WHERE recalled_at IS NULL
GROUP BY trader_id, delivery_start, delivery_end;

GRANT SELECT ON pnl_product_sums TO analyst_ro;
