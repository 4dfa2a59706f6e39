// Moving an order's holds to what it must hold now (server/orders/model.ts requiredHold): cash
// on the account for buys, MW in sell_holds for sells, each change one ledger entry. A hold that
// grows is taken only when there is enough; otherwise InsufficientError says needed vs available.
import type { Queryable } from '../db';
import { sql } from '../db';
import { book, isCheckViolation } from '../accounts/ledger';
import { cents, eur, micro, mwText } from '../accounts/money';
import type { EventBatch } from './events';
import { requiredHold, type HoldPolicy, type OrderRow } from './model';

export class InsufficientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InsufficientError';
  }
}

/** The 422 of a buy: what it needs held and what is available (EUR text). */
export function cashRefusal(needCents: bigint, available: string): InsufficientError {
  return new InsufficientError(`insufficient cash: this order needs ${eur(needCents)} EUR held, ${available} EUR is available`);
}

/** The 422 of a sell: what it needs and what may still be sold (micro-MW). */
export function quantityRefusal(need: bigint, long: bigint, shortLimit: bigint, heldBefore: bigint): InsufficientError {
  const free = long + shortLimit - heldBefore;
  return new InsufficientError(`insufficient quantity: this order needs ${mwText(need)} MW to sell, ${mwText(free > 0n ? free : 0n)} MW is available (long ${mwText(long)} MW + short limit ${mwText(shortLimit)} MW − ${mwText(heldBefore)} MW held by open sells)`);
}

export interface TradingPolicy extends HoldPolicy {
  /** Default short limit of an account in MW (accounts.short_limit_mw overrides it). */
  shortLimitMw: string;
}

/** The trader's long position in a product (MW bought minus sold, recalled deals left out). */
export async function longPosition(tx: Queryable, traderId: string, start: Date, end: Date): Promise<bigint> {
  const [row] = await tx.query<{ net: string | null }>(sql`
    SELECT sum(CASE WHEN direction = 'buy' THEN quantity ELSE -quantity END) AS net
    FROM trades WHERE trader_id = ${traderId} AND delivery_start = ${start} AND delivery_end = ${end} AND recalled_at IS NULL`);
  return row?.net ? micro(row.net) : 0n;
}

/**
 * Sets the order's holds to what it requires, in the caller's transaction (which must hold the
 * account's row lock when a hold may grow). Mutates `o.held` / `o.held_mw`; the caller writes the row.
 */
export async function settleHolds(tx: Queryable, o: OrderRow, policy: TradingPolicy, at: Date, events: EventBatch, account?: { short_limit_mw: string | null }): Promise<void> {
  const need = requiredHold(o, policy);
  const cashNow = cents(o.held);
  const cashDiff = need.cash - cashNow;
  if (cashDiff > 0n) {
    const done = await book(tx, { trader_id: o.trader_id, kind: 'hold', available: -cashDiff, held: cashDiff, at, order_id: o.id }, cashDiff);
    if (!done) {
      const [acc] = await tx.query<{ available: string }>(sql`SELECT available FROM accounts WHERE trader_id = ${o.trader_id}`);
      throw cashRefusal(cashDiff, acc?.available ?? '0.00');
    }
    events.balance(done);
  } else if (cashDiff < 0n) {
    events.balance((await book(tx, { trader_id: o.trader_id, kind: 'release', available: -cashDiff, held: cashDiff, at, order_id: o.id }))!);
  }
  o.held = eur(need.cash);

  const mwNow = micro(o.held_mw);
  const mwDiff = need.mw - mwNow;
  if (mwDiff > 0n) {
    const long = await longPosition(tx, o.trader_id, o.delivery_start, o.delivery_end);
    const shortLimit = micro(account?.short_limit_mw ?? policy.shortLimitMw);
    const [held] = await tx.query<{ held_mw: string }>(sql`
      SELECT held_mw FROM sell_holds WHERE trader_id = ${o.trader_id} AND delivery_start = ${o.delivery_start} AND delivery_end = ${o.delivery_end}`);
    const heldBefore = held ? micro(held.held_mw) : 0n;
    const sellable = long + shortLimit;
    const free = sellable - heldBefore;
    if (mwDiff > free) throw quantityRefusal(mwDiff, long, shortLimit, heldBefore);
    try {
      await tx.query(sql`
        INSERT INTO sell_holds (trader_id, delivery_start, delivery_end, held_mw, sellable_mw)
        VALUES (${o.trader_id}, ${o.delivery_start}, ${o.delivery_end}, ${mwText(mwDiff)}::numeric, ${mwText(sellable)}::numeric)
        ON CONFLICT (trader_id, delivery_start, delivery_end) DO UPDATE SET held_mw = sell_holds.held_mw + EXCLUDED.held_mw, sellable_mw = EXCLUDED.sellable_mw`);
    } catch (error) {
      if (isCheckViolation(error)) throw new InsufficientError(`insufficient quantity: this order needs ${mwText(mwDiff)} MW to sell, less is available`);
      throw error;
    }
  } else if (mwDiff < 0n) {
    await tx.query(sql`
      UPDATE sell_holds SET held_mw = greatest(held_mw - ${mwText(-mwDiff)}::numeric, 0)
      WHERE trader_id = ${o.trader_id} AND delivery_start = ${o.delivery_start} AND delivery_end = ${o.delivery_end}`);
  }
  o.held_mw = mwText(need.mw);
}
