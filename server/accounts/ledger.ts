// Cash accounts and their append-only ledger. Every change of an account is one statement that
// moves the balance and appends its entry (with the balance after it), inside the caller's
// transaction; the accounts table's CHECKs refuse available or held cash below zero.
import type { Queryable } from '../db';
import { sql } from '../db';
import { eur } from './money';

export type LedgerKind = 'deposit' | 'withdrawal' | 'hold' | 'release' | 'fill_cost' | 'fill_proceeds';

export interface Movement {
  trader_id: string;
  kind: LedgerKind;
  /** Change of available cash, cents. */
  available: bigint;
  /** Change of held cash, cents. */
  held?: bigint;
  /** Change of what is owed beyond the cash there was (fills only), cents. */
  owed?: bigint;
  at: Date;
  order_id?: string | null;
  trade_id?: string | null;
  memo?: string | null;
}

export interface Balance {
  trader_id: string;
  available: string;
  held: string;
  owed: string;
  updated_at: Date;
}

/** Creates the account when it does not exist yet (every trader_id has one, zero until funded). */
export async function ensureAccount(tx: Queryable, traderId: string, now: Date): Promise<void> {
  await tx.query(sql`INSERT INTO accounts (trader_id, created_at, updated_at) VALUES (${traderId}, ${now}, ${now}) ON CONFLICT (trader_id) DO NOTHING`);
}

/** The account's row, locked until the transaction ends (a trader's holds are decided one at a time). */
export async function lockAccount(tx: Queryable, traderId: string, now: Date): Promise<Balance & { short_limit_mw: string | null }> {
  await ensureAccount(tx, traderId, now);
  const [row] = await tx.query<Balance & { short_limit_mw: string | null }>(sql`
    SELECT trader_id, available, held, owed, short_limit_mw, updated_at FROM accounts WHERE trader_id = ${traderId} FOR UPDATE`);
  return row!;
}

/**
 * Locks existing accounts until the transaction ends, in trader_id order: every transaction that
 * locks several accounts takes them in this one order, so none waits for another in a cycle.
 */
export async function lockAccounts(tx: Queryable, traderIds: readonly string[]): Promise<(Balance & { short_limit_mw: string | null })[]> {
  return tx.query<Balance & { short_limit_mw: string | null }>(sql`
    SELECT trader_id, available, held, owed, short_limit_mw, updated_at FROM accounts WHERE trader_id = ANY(${traderIds}::text[]) ORDER BY trader_id FOR UPDATE`);
}

/**
 * Moves cash and appends the ledger entry in one statement. With `atLeast`, only when available
 * cash is at least that much (cents): null when it is not (nothing moved), or when the account
 * does not exist.
 */
export async function book(tx: Queryable, m: Movement, atLeast?: bigint): Promise<Balance | null> {
  const held = m.held ?? 0n;
  const owed = m.owed ?? 0n;
  const guard = atLeast === undefined ? sql`` : sql` AND available >= ${eur(atLeast)}::numeric`;
  const [row] = await tx.query<{ available: string; held: string; owed: string }>(sql`
    WITH a AS (
      UPDATE accounts SET available = available + ${eur(m.available)}::numeric, held = held + ${eur(held)}::numeric, owed = owed + ${eur(owed)}::numeric, updated_at = ${m.at}
      WHERE trader_id = ${m.trader_id}${guard}
      RETURNING available, held, owed
    ), entry AS (
      INSERT INTO ledger (trader_id, at, kind, amount, held_amount, owed_amount, available_after, held_after, order_id, trade_id, memo)
      SELECT ${m.trader_id}, ${m.at}, ${m.kind}, ${eur(m.available)}::numeric, ${eur(held)}::numeric, ${eur(owed)}::numeric, a.available, a.held, ${m.order_id ?? null}::uuid, ${m.trade_id ?? null}, ${m.memo ?? null}
      FROM a
      RETURNING id
    )
    SELECT a.available, a.held, a.owed FROM a, entry`);
  return row ? { trader_id: m.trader_id, available: row.available, held: row.held, owed: row.owed, updated_at: m.at } : null;
}

export async function balanceOf(db: Queryable, traderId: string): Promise<Balance> {
  const [row] = await db.query<Balance>(sql`SELECT trader_id, available, held, owed, updated_at FROM accounts WHERE trader_id = ${traderId}`);
  return row ?? { trader_id: traderId, available: '0.00', held: '0.00', owed: '0.00', updated_at: new Date(0) };
}

/** A Postgres CHECK constraint refused the statement (an account or hold would go below zero). */
export function isCheckViolation(error: unknown): boolean {
  return (error as { code?: string })?.code === '23514';
}

export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: string })?.code === '23505';
}
