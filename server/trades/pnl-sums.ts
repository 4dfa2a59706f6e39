// The running sums of pnl_product_sums (sql/0160), changed in the transaction of every write to
// trades. Each change is one upsert of the rows' sums per product, in key order (concurrent
// writers of the same products lock them in one order), with the expressions of pnl_hourly.
import { sql, type Queryable } from '../db';
import type { SqlQuery } from '../db/sql';
import type { TradeRow } from './normalize';

const energy = sql`r.quantity * extract(epoch FROM r.delivery_end - r.delivery_start) / 3600`;

/**
 * An upsert that adds (`sign` 1) or subtracts (-1) the trades `rows` selects: a query or a CTE name
 * whose rows have trader_id, delivery_start, delivery_end, direction, price and quantity.
 */
export function pnlSumsChange(rows: SqlQuery, sign: 1 | -1): SqlQuery {
  const s = sign === 1 ? sql`` : sql`-`;
  return sql`
    INSERT INTO pnl_product_sums AS p (trader_id, delivery_start, delivery_end, trades, buy_mw, sell_mw, buy_mwh, sell_mwh, buy_eur, sell_eur)
    SELECT r.trader_id, r.delivery_start, r.delivery_end,
      ${s}count(*),
      ${s}coalesce(sum(r.quantity) FILTER (WHERE r.direction = 'buy'), 0),
      ${s}coalesce(sum(r.quantity) FILTER (WHERE r.direction = 'sell'), 0),
      ${s}coalesce(sum(${energy}) FILTER (WHERE r.direction = 'buy'), 0),
      ${s}coalesce(sum(${energy}) FILTER (WHERE r.direction = 'sell'), 0),
      ${s}coalesce(sum(r.price * ${energy}) FILTER (WHERE r.direction = 'buy'), 0),
      ${s}coalesce(sum(r.price * ${energy}) FILTER (WHERE r.direction = 'sell'), 0)
    FROM ${rows} r
    GROUP BY r.trader_id, r.delivery_start, r.delivery_end
    ORDER BY r.trader_id, r.delivery_start, r.delivery_end
    ON CONFLICT (trader_id, delivery_start, delivery_end) DO UPDATE SET
      trades = p.trades + excluded.trades,
      buy_mw = p.buy_mw + excluded.buy_mw, sell_mw = p.sell_mw + excluded.sell_mw,
      buy_mwh = p.buy_mwh + excluded.buy_mwh, sell_mwh = p.sell_mwh + excluded.sell_mwh,
      buy_eur = p.buy_eur + excluded.buy_eur, sell_eur = p.sell_eur + excluded.sell_eur`;
}

/** The rows of `trades` as a table for pnlSumsChange, with the column types of the trades table. */
export function tradeRowsTable(rows: readonly Pick<TradeRow, 'trader_id' | 'delivery_start' | 'delivery_end' | 'direction' | 'price' | 'quantity'>[]): SqlQuery {
  return sql`(SELECT * FROM unnest(
      ${rows.map((r) => r.trader_id)}::text[], ${rows.map((r) => r.delivery_start.toISOString())}::timestamptz[],
      ${rows.map((r) => r.delivery_end.toISOString())}::timestamptz[], ${rows.map((r) => r.direction)}::text[],
      ${rows.map((r) => r.price)}::numeric(14, 2)[], ${rows.map((r) => r.quantity)}::numeric(18, 6)[])
    AS u(trader_id, delivery_start, delivery_end, direction, price, quantity))`;
}

/** Adds stored trades (not recalled) to the sums, in the caller's transaction. */
export async function addToPnlSums(tx: Queryable, rows: Parameters<typeof tradeRowsTable>[0]): Promise<void> {
  if (rows.length) await tx.query(pnlSumsChange(tradeRowsTable(rows), 1));
}
