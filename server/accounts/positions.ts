// Positions per delivery product from every trade of the trader (feed, file, API, fills;
// recalled deals left out), with the MW still open in orders and the mark-to-market at the
// product's reference price (the hour's, for a quarter hour).
import { z } from 'zod';
import type { Queryable } from '../db';
import { sql } from '../db';
import { dayBounds } from '../time/market-time';
import { periodOf } from '../orders/model';
import { apiProduct } from '../trades/normalize';

export const PositionSchema = z.object({
  delivery_day: z.string().meta({ format: 'date' }),
  delivery_hour: z.number().int(),
  delivery_period: z.string(),
  delivery_start: z.string().meta({ format: 'date-time' }),
  delivery_end: z.string().meta({ format: 'date-time' }),
  bought_mw: z.number(), sold_mw: z.number(), net_mw: z.number(),
  avg_buy_price: z.number().nullable().meta({ description: 'eurocent/MWh' }),
  avg_sell_price: z.number().nullable().meta({ description: 'eurocent/MWh' }),
  open_buy_mw: z.number(), open_sell_mw: z.number(),
  ref_price: z.number().nullable().meta({ description: 'Reference price, eurocent/MWh; null when the provider has none' }),
  realized_eur: z.string().meta({ description: 'Σ sell price × energy − Σ buy price × energy, EUR' }),
  mtm_eur: z.string().nullable().meta({ description: 'realized_eur + net energy × ref_price; null without a reference price' }),
  value_eur: z.string().nullable().meta({ description: 'net energy × ref_price: what the open position is worth; null without a reference price' }),
}).meta({ id: 'Position' });
export type Position = z.infer<typeof PositionSchema>;

interface Row {
  delivery_day: string;
  delivery_start: Date;
  delivery_end: Date;
  bought: string | null;
  sold: string | null;
  buy_value: string | null;
  sell_value: string | null;
  open_buy: string | null;
  open_sell: string | null;
  ref: string | null;
  realized: string;
  mtm: string | null;
  value: string | null;
}

export async function positions(db: Queryable, tz: string, traderId: string, filter: { day?: string; after?: Date }): Promise<Position[]> {
  const b = filter.day ? dayBounds(filter.day, tz) : undefined;
  const range = (col: string) => {
    const c = sql([col] as unknown as TemplateStringsArray);
    const parts = [sql`TRUE`];
    if (b) parts.push(sql`${c}.delivery_start >= ${b.start} AND ${c}.delivery_start < ${b.end}`);
    if (filter.after) parts.push(sql`${c}.delivery_end > ${filter.after}`);
    return sql.join(parts, sql` AND `);
  };
  const rows = await db.query<Row>(sql`
    WITH t AS (
      SELECT delivery_day, delivery_start, delivery_end,
        sum(quantity) FILTER (WHERE direction = 'buy') AS bought, sum(quantity) FILTER (WHERE direction = 'sell') AS sold,
        sum(price * quantity) FILTER (WHERE direction = 'buy') AS buy_value, sum(price * quantity) FILTER (WHERE direction = 'sell') AS sell_value
      FROM trades t WHERE trader_id = ${traderId} AND recalled_at IS NULL AND ${range('t')}
      GROUP BY delivery_day, delivery_start, delivery_end
    ), o AS (
      SELECT delivery_day, delivery_start, delivery_end,
        sum(coalesce(pending_quantity, quantity) - filled_quantity) FILTER (WHERE side = 'buy') AS open_buy,
        sum(coalesce(pending_quantity, quantity) - filled_quantity) FILTER (WHERE side = 'sell') AS open_sell
      FROM orders o WHERE trader_id = ${traderId} AND status IN ('pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace') AND ${range('o')}
      GROUP BY delivery_day, delivery_start, delivery_end
    ), p AS (
      SELECT coalesce(t.delivery_day, o.delivery_day) AS delivery_day, coalesce(t.delivery_start, o.delivery_start) AS delivery_start, coalesce(t.delivery_end, o.delivery_end) AS delivery_end,
        t.bought, t.sold, t.buy_value, t.sell_value, o.open_buy, o.open_sell
      FROM t FULL JOIN o ON o.delivery_start = t.delivery_start AND o.delivery_end = t.delivery_end
    )
    SELECT p.*, r.value AS ref,
      round((coalesce(p.sell_value, 0) - coalesce(p.buy_value, 0)) * extract(epoch FROM p.delivery_end - p.delivery_start) / 3600, 2) AS realized,
      round((coalesce(p.sell_value, 0) - coalesce(p.buy_value, 0) + (coalesce(p.bought, 0) - coalesce(p.sold, 0)) * r.value) * extract(epoch FROM p.delivery_end - p.delivery_start) / 3600, 2) AS mtm,
      round((coalesce(p.bought, 0) - coalesce(p.sold, 0)) * r.value * extract(epoch FROM p.delivery_end - p.delivery_start) / 3600, 2) AS value
    FROM p LEFT JOIN LATERAL (
      SELECT value FROM reference_prices rp WHERE rp.delivery_start <= p.delivery_start AND rp.delivery_end > p.delivery_start AND rp.delivery_start > p.delivery_start - INTERVAL '1 day'
      ORDER BY rp.delivery_start DESC, rp.last_update DESC LIMIT 1
    ) r ON TRUE
    ORDER BY p.delivery_start, p.delivery_end`);
  const n = (v: string | null) => (v === null ? 0 : Number(v));
  const avg = (value: string | null, q: string | null) => (value === null || !q || Number(q) === 0 ? null : Math.round((Number(value) / Number(q)) * 100 * 100) / 100);
  return rows.map((r) => ({
    delivery_day: r.delivery_day, delivery_hour: apiProduct(r.delivery_day, r.delivery_start, r.delivery_end, tz).hour, delivery_period: periodOf(r, tz),
    delivery_start: r.delivery_start.toISOString(), delivery_end: r.delivery_end.toISOString(),
    bought_mw: n(r.bought), sold_mw: n(r.sold), net_mw: Math.round((n(r.bought) - n(r.sold)) * 1e6) / 1e6,
    avg_buy_price: avg(r.buy_value, r.bought), avg_sell_price: avg(r.sell_value, r.sold),
    open_buy_mw: n(r.open_buy), open_sell_mw: n(r.open_sell),
    ref_price: r.ref === null ? null : Math.round(Number(r.ref) * 100),
    realized_eur: fix2(r.realized), mtm_eur: r.mtm === null ? null : fix2(r.mtm), value_eur: r.value === null ? null : fix2(r.value),
  }));
}

/** numeric text rounded to 2 places by the database -> "12.30" (also "-0.00" -> "0.00"). */
function fix2(v: string): string {
  const [w, f = ''] = v.split('.');
  const text = `${w}.${f.padEnd(2, '0').slice(0, 2)}`;
  return /^-0\.00$/.test(text) ? '0.00' : text;
}
