// The books of one trader after trading settled down: what every trading test that moves cash
// checks the same way.
import { expect } from 'vitest';
import { sql, type Queryable } from '../../server/db';

/**
 * held = Σ the open orders' holds; sell holds = Σ the open sells' MW; total = deposits − costs +
 * proceeds; the ledger sums to the account; nothing owed; every fill is exactly one trade.
 * Returns the number of fills, for the caller to say how much there was to check.
 */
export async function expectBooksAddUp(db: Queryable, traderId: string): Promise<number> {
  const t = traderId;
  const [acc] = await db.query<{ available: string; held: string; owed: string }>(sql`SELECT available, held, owed FROM accounts WHERE trader_id = ${t}`);
  const [open] = await db.query<{ h: string; mw: string }>(sql`SELECT coalesce(sum(held), 0) AS h, coalesce(sum(held_mw) FILTER (WHERE side = 'sell'), 0) AS mw FROM orders WHERE trader_id = ${t}`);
  const [ledger] = await db.query<{ a: string; h: string; deposits: string }>(sql`SELECT sum(amount) AS a, sum(held_amount) AS h, sum(amount) FILTER (WHERE kind = 'deposit') AS deposits FROM ledger WHERE trader_id = ${t}`);
  const [money] = await db.query<{ costs: string | null; proceeds: string | null }>(sql`
    SELECT sum(round(f.price * f.quantity * extract(epoch FROM o.delivery_end - o.delivery_start) / 3600, 2)) FILTER (WHERE o.side = 'buy') AS costs,
           sum(round(f.price * f.quantity * extract(epoch FROM o.delivery_end - o.delivery_start) / 3600, 2)) FILTER (WHERE o.side = 'sell') AS proceeds
    FROM order_fills f JOIN orders o ON o.id = f.order_id WHERE o.trader_id = ${t}`);
  const [sellHolds] = await db.query<{ mw: string | null }>(sql`SELECT sum(held_mw) AS mw FROM sell_holds WHERE trader_id = ${t}`);
  expect(acc!.owed).toBe('0.00');
  expect(acc!.held).toBe(Number(open!.h).toFixed(2)); // held = Σ open holds
  expect(Number(sellHolds!.mw ?? 0)).toBeCloseTo(Number(open!.mw), 6);
  const total = Number(acc!.available) + Number(acc!.held);
  expect(total.toFixed(2)).toBe((Number(ledger!.deposits) - Number(money!.costs ?? 0) + Number(money!.proceeds ?? 0)).toFixed(2));
  expect(Number(ledger!.a).toFixed(2)).toBe(acc!.available);
  expect(Number(ledger!.h).toFixed(2)).toBe(acc!.held);
  const [trades] = await db.query<{ n: number; fills: number }>(sql`
    SELECT (SELECT count(*)::int FROM trades tr JOIN order_fills f ON f.deal_id = tr.id JOIN orders o ON o.id = f.order_id WHERE o.trader_id = ${t}) AS n,
           (SELECT count(*)::int FROM order_fills f JOIN orders o ON o.id = f.order_id WHERE o.trader_id = ${t}) AS fills`);
  expect(trades!.n).toBe(trades!.fills);
  return trades!.fills;
}
