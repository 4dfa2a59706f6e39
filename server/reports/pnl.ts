// PnL per trader and delivery hour from the pnl_hourly continuous aggregate (past days) or the
// running product sums (today and later), and the latest reference prices. All arithmetic
// is SQL numeric; values become JSON numbers only here, at the edge (money rounded to cents in SQL).
import type { Queryable } from '../db';
import { sql } from '../db';
import type { SqlQuery } from '../db/sql';
import type { DeskReport, PnlHourRow, PnlProductRow, PnlReport, PnlTotal } from '../live/events';
import { dayBounds, formatPeriod, hoursOfDay, localDay, productOf } from '../time/market-time';
import { trimDecimal } from '../trades/decimal';

/** Per-hour sums as numerics; `ref` is the hour's latest reference price or null. */
const hourValues = sql`
  coalesce(a.trades, 0) AS trades,
  coalesce(a.buy_mw, 0) AS buy_mw, coalesce(a.sell_mw, 0) AS sell_mw,
  coalesce(a.buy_mwh, 0) AS buy_mwh, coalesce(a.sell_mwh, 0) AS sell_mwh,
  coalesce(a.buy_eur, 0) AS buy_eur, coalesce(a.sell_eur, 0) AS sell_eur,
  r.value AS ref`;

/** The derived columns, from sums named like hourValues (works for one hour and for sums). */
function derived(v: { trades: SqlQuery; buyMw: SqlQuery; sellMw: SqlQuery; buyMwh: SqlQuery; sellMwh: SqlQuery; buyEur: SqlQuery; sellEur: SqlQuery; ref: SqlQuery; mtm: SqlQuery; vsRef: SqlQuery }): SqlQuery {
  return sql`
    ${v.trades}::int8 AS trades,
    ${v.buyMw} AS buy_mw, ${v.sellMw} AS sell_mw,
    round(${v.sellEur} - ${v.buyEur}, 2) AS pnl_eur,
    ${v.buyMw} - ${v.sellMw} AS net_mw,
    round(${v.buyEur} / nullif(${v.buyMwh}, 0), 4) AS vwap_buy,
    round(${v.sellEur} / nullif(${v.sellMwh}, 0), 4) AS vwap_sell,
    ${v.ref} AS ref_price,
    round(${v.mtm}, 2) AS mtm_pnl_eur,
    round(${v.vsRef}, 2) AS vs_ref_eur`;
}

const hourDerived = derived({
  trades: sql`h.trades`, buyMw: sql`h.buy_mw`, sellMw: sql`h.sell_mw`, buyMwh: sql`h.buy_mwh`, sellMwh: sql`h.sell_mwh`,
  buyEur: sql`h.buy_eur`, sellEur: sql`h.sell_eur`, ref: sql`h.ref`,
  mtm: sql`h.sell_eur - h.buy_eur + (h.buy_mwh - h.sell_mwh) * h.ref`,
  vsRef: sql`(h.sell_eur - h.sell_mwh * h.ref) + (h.buy_mwh * h.ref - h.buy_eur)`,
});

// Over the hours of a day: only hours with trades count, and mark-to-market is unknown (null)
// as soon as one hour with trades has no reference price.
const totalDerived = derived({
  trades: sql`coalesce(sum(h.trades), 0)`, buyMw: sql`coalesce(sum(h.buy_mw), 0)`, sellMw: sql`coalesce(sum(h.sell_mw), 0)`,
  buyMwh: sql`coalesce(sum(h.buy_mwh), 0)`, sellMwh: sql`coalesce(sum(h.sell_mwh), 0)`,
  buyEur: sql`coalesce(sum(h.buy_eur), 0)`, sellEur: sql`coalesce(sum(h.sell_eur), 0)`, ref: sql`NULL::numeric`,
  mtm: sql`CASE WHEN coalesce(bool_and(h.ref IS NOT NULL), true) THEN coalesce(sum(h.sell_eur - h.buy_eur + (h.buy_mwh - h.sell_mwh) * h.ref), 0) END`,
  vsRef: sql`CASE WHEN coalesce(bool_and(h.ref IS NOT NULL), true) THEN coalesce(sum((h.sell_eur - h.sell_mwh * h.ref) + (h.buy_mwh * h.ref - h.buy_eur)), 0) END`,
});

interface DerivedRow {
  trades: number;
  buy_mw: string;
  sell_mw: string;
  pnl_eur: string;
  net_mw: string;
  vwap_buy: string | null;
  vwap_sell: string | null;
  ref_price: string | null;
  mtm_pnl_eur: string | null;
  vs_ref_eur: string | null;
}

/** An exact decimal as a JSON number (the text is already rounded where it is money). */
export function decimalToNumber(text: string): number {
  return Number(trimDecimal(text));
}

const nullable = (text: string | null) => (text === null ? null : decimalToNumber(text));

function toTotal(r: DerivedRow): PnlTotal {
  return {
    trades: Number(r.trades),
    buy_mw: decimalToNumber(r.buy_mw),
    sell_mw: decimalToNumber(r.sell_mw),
    pnl_eur: decimalToNumber(r.pnl_eur),
    net_mw: decimalToNumber(r.net_mw),
    vwap_buy: nullable(r.vwap_buy),
    vwap_sell: nullable(r.vwap_sell),
    ref_price: nullable(r.ref_price),
    mtm_pnl_eur: nullable(r.mtm_pnl_eur),
    vs_ref_eur: nullable(r.vs_ref_eur),
  };
}

/**
 * The days read from pnl_product_sums (sql/0160) rather than pnl_hourly: those that real-time
 * aggregation would read from the raw trades (today and later, and yesterday until it is
 * materialised after midnight). Both sources are exact; the sums cost a few rows per hour.
 */
export function readsSums(day: string, tz: string, now = new Date()): boolean {
  return day >= localDay(new Date(now.getTime() - 86_400_000), tz);
}

/**
 * Hourly rows of the given traders (null: all) in [start, end): the product sums, or pnl_hourly
 * through sql/0022 (plan-time chunk exclusion; one trader or all).
 */
function aggregated(traderIds: readonly string[] | null, start: Date, end: Date, sums: boolean): SqlQuery {
  if (sums) {
    // An hour that traded anything but its plain hour also lists its products (as JSON arrays:
    // start, end, trades, buy MW, sell MW, PnL), so that one query makes the whole report.
    return sql`
      SELECT trader_id, bucket, sum(trades) AS trades, sum(buy_mw) AS buy_mw, sum(sell_mw) AS sell_mw,
        sum(buy_mwh) AS buy_mwh, sum(sell_mwh) AS sell_mwh, sum(buy_eur) AS buy_eur, sum(sell_eur) AS sell_eur,
        CASE WHEN bool_or(other) THEN json_agg(json_build_array(delivery_start, delivery_end, trades, buy_mw, sell_mw, round(sell_eur - buy_eur, 2)) ORDER BY delivery_start, delivery_end) END AS products
      FROM (
        SELECT *, time_bucket(INTERVAL '1 hour', delivery_start) AS bucket,
          delivery_end - delivery_start <> INTERVAL '1 hour' OR time_bucket(INTERVAL '1 hour', delivery_start) <> delivery_start AS other
        FROM pnl_product_sums
        WHERE delivery_start >= ${start} AND delivery_start < ${end} AND trades > 0${traderIds === null ? sql`` : sql` AND trader_id = ANY(${traderIds}::text[])`}) p
      GROUP BY 1, 2`;
  }
  const one = traderIds?.length === 1 ? traderIds[0]! : null;
  return sql`
    SELECT trader_id, bucket, trades, buy_mw, sell_mw, buy_mwh, sell_mwh, buy_eur, sell_eur, NULL::json AS products
    FROM pnl_hourly_between(${one}::text, ${start}::timestamptz, ${end}::timestamptz)`;
}

function references(start: Date, end: Date): SqlQuery {
  return sql`SELECT delivery_start, value FROM reference_prices_latest WHERE delivery_start >= ${start} AND delivery_start < ${end}`;
}

/** The report of one trader and local day: every hour of the day, zeros where nothing traded. */
export async function pnlReport(db: Queryable, traderId: string, day: string, tz: string, options: { sums?: boolean } = {}): Promise<PnlReport> {
  return (await pnlReports(db, [traderId], day, tz, options)).get(traderId)!;
}

/**
 * The reports of several traders for one local day: one query whatever their number from the
 * product sums (two per trader from pnl_hourly): how the report cache computes a round.
 */
export async function pnlReports(db: Queryable, traderIds: readonly string[], day: string, tz: string, options: { sums?: boolean } = {}): Promise<Map<string, PnlReport>> {
  const sums = options.sums ?? readsSums(day, tz);
  if (!sums && traderIds.length > 1) {
    const reports = new Map<string, PnlReport>();
    for (const traderId of traderIds) reports.set(traderId, await pnlReport(db, traderId, day, tz, options));
    return reports;
  }
  const slots = hoursOfDay(day, tz);
  const { start, end } = dayBounds(day, tz);
  const ids = [...new Set(traderIds)];
  const rows = await db.query<DerivedRow & { trader_id: string; idx: number | null; products: unknown }>(sql`
    WITH a AS (${aggregated(ids, start, end, sums)}),
         r AS (${references(start, end)}),
         t AS (SELECT * FROM unnest(${ids}::text[]) AS t(trader_id)),
         h AS (
           SELECT t.trader_id, s.idx, a.products, ${hourValues}
           FROM t CROSS JOIN unnest(${slots.map((s) => s.start.toISOString())}::timestamptz[]) WITH ORDINALITY AS s(start, idx)
           LEFT JOIN a ON a.trader_id = t.trader_id AND a.bucket = s.start
           LEFT JOIN r ON r.delivery_start = s.start)
    SELECT h.trader_id, h.idx::int8 AS idx, h.products, ${hourDerived} FROM h
    UNION ALL
    SELECT t.trader_id, NULL, NULL, x.* FROM t CROSS JOIN LATERAL (SELECT ${totalDerived} FROM h WHERE h.trader_id = t.trader_id AND h.trades > 0) x`);
  const products = sums ? productsOfRows(rows, day, tz) : await productRows(db, ids[0]!, day, tz);
  const reports = new Map<string, PnlReport>();
  for (const traderId of ids) {
    const own = rows.filter((r) => r.trader_id === traderId);
    const byIdx = new Map(own.map((r) => [r.idx === null ? null : Number(r.idx), r]));
    const mine = products.get(traderId);
    const hours: PnlHourRow[] = slots.map((slot) => ({
      label: slot.label,
      delivery_start: slot.start.toISOString(),
      delivery_end: slot.end.toISOString(),
      ...toTotal(byIdx.get(slot.index + 1)!),
      ...(mine?.has(slot.index) ? { products: mine.get(slot.index)! } : {}),
    }));
    reports.set(traderId, { trader_id: traderId, delivery_day: day, timezone: tz, hours, total: toTotal(byIdx.get(null)!) });
  }
  return reports;
}

type ProductsByTrader = Map<string, Map<number, PnlProductRow[]>>;

function addProduct(byTrader: ProductsByTrader, traderId: string, day: string, tz: string, start: Date, end: Date, trades: number, buyMw: number, sellMw: number, pnlEur: number): void {
  const product = productOf(day, start, end, tz);
  const bySlot = byTrader.get(traderId) ?? new Map<number, PnlProductRow[]>();
  byTrader.set(traderId, bySlot);
  const list = bySlot.get(product.slot.index) ?? [];
  list.push({ period: formatPeriod(product), delivery_start: start.toISOString(), delivery_end: end.toISOString(), trades, buy_mw: buyMw, sell_mw: sellMw, pnl_eur: pnlEur });
  bySlot.set(product.slot.index, list);
}

/** The products listed with the hours of the product sums' query (JSON: numbers already decimal). */
function productsOfRows(rows: readonly { trader_id: string; products: unknown }[], day: string, tz: string): ProductsByTrader {
  const byTrader: ProductsByTrader = new Map();
  for (const row of rows) {
    if (row.products === null || row.products === undefined) continue;
    const list = (typeof row.products === 'string' ? JSON.parse(row.products) : row.products) as [string, string, number, number, number, number][];
    for (const [start, end, trades, buyMw, sellMw, pnlEur] of list) addProduct(byTrader, row.trader_id, day, tz, new Date(start), new Date(end), trades, buyMw, sellMw, pnlEur);
  }
  return byTrader;
}

/**
 * The products of one trader's hours that traded something other than their plain hour, from
 * pnl_hourly's day through sql/0071 (the raw trades of just those hours: pnl_hourly has only hours).
 */
async function productRows(db: Queryable, traderId: string, day: string, tz: string): Promise<ProductsByTrader> {
  const { start, end } = dayBounds(day, tz);
  const rows = await db.query<{ delivery_start: Date; delivery_end: Date; trades: number; buy_mw: string; sell_mw: string; pnl_eur: string }>(sql`
    SELECT delivery_start, delivery_end, trades, buy_mw, sell_mw, pnl_eur FROM pnl_products_between(${traderId}::text, ${start}::timestamptz, ${end}::timestamptz)`);
  const byTrader: ProductsByTrader = new Map();
  for (const r of rows) addProduct(byTrader, traderId, day, tz, r.delivery_start, r.delivery_end, Number(r.trades), decimalToNumber(r.buy_mw), decimalToNumber(r.sell_mw), decimalToNumber(r.pnl_eur));
  return byTrader;
}

/** Every trader's totals for a local day (traders without trades that day are not listed). */
export async function deskReport(db: Queryable, day: string, tz: string, options: { sums?: boolean } = {}): Promise<DeskReport> {
  const { start, end } = dayBounds(day, tz);
  const rows = await db.query<DerivedRow & { trader_id: string | null }>(sql`
    WITH a AS (${aggregated(null, start, end, options.sums ?? readsSums(day, tz))}),
         r AS (${references(start, end)}),
         h AS (SELECT a.trader_id, ${hourValues} FROM a LEFT JOIN r ON r.delivery_start = a.bucket)
    SELECT h.trader_id, ${totalDerived} FROM h GROUP BY h.trader_id
    UNION ALL
    SELECT NULL, ${totalDerived} FROM h
    ORDER BY 1 NULLS LAST`);
  const traders = rows.filter((r) => r.trader_id !== null).map((r) => ({ trader_id: r.trader_id!, ...toTotal(r) }));
  const total = toTotal(rows.find((r) => r.trader_id === null)!);
  return { delivery_day: day, timezone: tz, traders, total };
}
