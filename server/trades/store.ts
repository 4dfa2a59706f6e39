// Storing and reading trades. Ingestion is idempotent on the exchange's deal id across every
// source and process: a repeat with the same content is a duplicate, with other content a conflict.
import type { Db, Queryable } from '../db';
import { sql } from '../db';
import { dayBounds } from '../time/market-time';
import { trimDecimal } from './decimal';
import { toApiTrade, type ApiTrade, type RecalledTrade, type TradeRow, type TradeSource } from './normalize';

export type IngestStatus = 'stored' | 'duplicate' | 'conflict';

export interface IngestOutcome {
  id: string;
  status: IngestStatus;
  /** For a conflict: the fields that differ from the stored trade. */
  differences?: string[];
}

/** Channel on which every commit that stored trades is announced (payload: TradesStoredEvent). */
export const tradesStoredChannel = 'trades_stored';

/** A delivery hour that a commit touched, for consumers that only need where (PnL freshness). */
export interface TouchedHour {
  trader_id: string;
  delivery_day: string;
  delivery_hour: number;
}

/**
 * The payload of trades_stored. Commits of up to `detailLimit` trades (the feed's micro-batches,
 * single API posts) carry every trade; larger ones (bulk uploads, the nightly file) carry only the
 * distinct hours they touched, so that announcing 10,000 trades does not cost more than storing them.
 */
export type TradesStoredEvent =
  | { source: TradeSource; trades: ApiTrade[]; touched?: undefined; count?: undefined; recalled?: RecalledTrade[] }
  | { source: TradeSource; trades?: undefined; touched: TouchedHour[]; count: number; recalled?: undefined };

/** Most trades one commit announces one by one. */
export const detailLimit = 1000;

/** Every hour an event touched, whichever its form. */
export function touchedHours(event: TradesStoredEvent): TouchedHour[] {
  const hours: TouchedHour[] = event.trades ?? event.touched ?? [];
  return event.recalled?.length ? [...hours, ...event.recalled] : hours;
}

const maxNotifyBytes = 7000; // Postgres refuses NOTIFY payloads of 8000 bytes and more

const tradeColumns = [
  { name: 'id', type: 'text' },
  { name: 'trader_id', type: 'text' },
  { name: 'direction', type: 'text' },
  { name: 'price', type: 'numeric' },
  { name: 'quantity', type: 'numeric' },
  { name: 'delivery_day', type: 'date' },
  { name: 'delivery_start', type: 'timestamptz' },
  { name: 'delivery_end', type: 'timestamptz' },
  { name: 'execution_time', type: 'timestamptz' },
  { name: 'source', type: 'text' },
  { name: 'received_at', type: 'timestamptz' },
  { name: 'recalled_at', type: 'timestamptz' },
  { name: 'after_gate_closure', type: 'boolean' },
] as const;

const compared = ['trader_id', 'direction', 'price', 'quantity', 'delivery_start', 'delivery_end', 'execution_time'] as const;

export function differences(a: TradeRow, b: TradeRow): string[] {
  return compared.filter((field) => {
    const x = a[field];
    const y = b[field];
    if (x instanceof Date && y instanceof Date) return x.getTime() !== y.getTime();
    if (field === 'price' || field === 'quantity') return trimDecimal(String(x)) !== trimDecimal(String(y));
    return x !== y;
  });
}

export async function ingestTrades(db: Db, rows: readonly TradeRow[], source: TradeSource, tz: string, receivedAt: Date): Promise<IngestOutcome[]> {
  return db.transaction((tx) => ingestTradesIn(tx, rows, source, tz, receivedAt));
}

/** ingestTrades inside the caller's transaction (the exchange session commits its seq with the deals). */
export async function ingestTradesIn(tx: Queryable, rows: readonly TradeRow[], source: TradeSource, tz: string, receivedAt: Date): Promise<IngestOutcome[]> {
  const outcomes: IngestOutcome[] = new Array(rows.length);
  // Within one batch the first occurrence of an id is the candidate; repeats compare with it.
  const firstIndex = new Map<string, number>();
  const candidates: TradeRow[] = [];
  rows.forEach((row, i) => {
    const first = firstIndex.get(row.id);
    if (first === undefined) {
      firstIndex.set(row.id, i);
      candidates.push(row);
    }
  });
  if (candidates.length === 0) return outcomes;

  const fresh = await tx.query<{ id: string }>(sql`
    INSERT INTO trade_keys (id, delivery_start, first_source)
    SELECT id, delivery_start, ${source} FROM unnest(${candidates.map((r) => r.id)}::text[], ${candidates.map((r) => r.delivery_start.toISOString())}::timestamptz[]) AS k(id, delivery_start)
    ON CONFLICT (id) DO NOTHING
    RETURNING id`);
  const freshIds = new Set(fresh.map((r) => r.id));
  const toInsert = candidates.filter((r) => freshIds.has(r.id));
  // A deal the exchange recalled before it arrived is stored as recalled.
  const recalls = toInsert.length ? await pendingRecalls(tx, toInsert.map((r) => r.id)) : new Map<string, { reason: string; recalled_at: Date }>();
  await tx.bulkInsert('trades', tradeColumns, toInsert.map((r) => [r.id, r.trader_id, r.direction, r.price, r.quantity, r.delivery_day, r.delivery_start, r.delivery_end, r.execution_time, source, receivedAt, recalls.get(r.id)?.recalled_at ?? null, r.after_gate_closure ?? false]));
  const existing = candidates.filter((r) => !freshIds.has(r.id));
  const known = existing.length ? await fetchByIds(tx, existing.map((r) => r.id)) : new Map<string, TradeRow>();
  for (const row of existing) {
    const current = known.get(row.id);
    const diff = current ? differences(current, row) : ['id'];
    outcomes[firstIndex.get(row.id)!] = diff.length ? { id: row.id, status: 'conflict', differences: diff } : { id: row.id, status: 'duplicate' };
  }
  for (const row of toInsert) outcomes[firstIndex.get(row.id)!] = { id: row.id, status: 'stored' };
  await announce(tx, source, toInsert.filter((r) => !recalls.has(r.id)), tz, toInsert.filter((r) => recalls.has(r.id)).map((r) => ({ row: r, ...recalls.get(r.id)! })));

  rows.forEach((row, i) => {
    if (outcomes[i]) return;
    const first = rows[firstIndex.get(row.id)!]!;
    const diff = differences(first, row);
    outcomes[i] = diff.length ? { id: row.id, status: 'conflict', differences: diff } : { id: row.id, status: 'duplicate' };
  });
  return outcomes;
}

async function pendingRecalls(tx: Queryable, ids: readonly string[]): Promise<Map<string, { reason: string; recalled_at: Date }>> {
  const rows = await tx.query<{ id: string; reason: string; recalled_at: Date }>(sql`SELECT id, reason, recalled_at FROM deal_recalls WHERE id = ANY(${[...ids]}::text[])`);
  return new Map(rows.map((r) => [r.id, r]));
}

/** A stored trade marked recalled, for announcing it. */
export interface RecalledRow {
  row: TradeRow;
  reason: string;
  recalled_at: Date;
}

/**
 * NOTIFY inside the transaction: listeners hear of the trades only once they are committed. All
 * chunks go in one statement, whatever the batch size. Recalled trades travel with the detailed
 * form (there are few): listeners refresh their hours and strike them through.
 */
export async function announce(tx: Queryable, source: TradeSource, rows: readonly TradeRow[], tz: string, recalled: readonly RecalledRow[] = []) {
  if (!rows.length && !recalled.length) return;
  const items: string[] = [];
  let envelope: (items: string) => string;
  if (rows.length <= detailLimit) {
    for (const row of rows) items.push(JSON.stringify(toApiTrade(row, tz)));
    envelope = (list) => `{"source":${JSON.stringify(source)},"trades":[${list}]}`;
  } else {
    const seen = new Set<string>();
    for (const row of rows) {
      const { trader_id, delivery_day, delivery_hour } = toApiTrade(row, tz);
      const item = JSON.stringify({ trader_id, delivery_day, delivery_hour });
      seen.add(item);
    }
    items.push(...seen);
    envelope = (list) => `{"source":${JSON.stringify(source)},"count":${rows.length},"touched":[${list}]}`;
  }
  const payloads = chunked(items, envelope);
  if (recalled.length) {
    const recalls = recalled.map((r) => JSON.stringify({ ...toApiTrade(r.row, tz), recall: { reason: r.reason, recalled_at: r.recalled_at.toISOString() } } satisfies RecalledTrade));
    payloads.push(...chunked(recalls, (list) => `{"source":${JSON.stringify(source)},"trades":[],"recalled":[${list}]}`));
  }
  await tx.query(sql`SELECT pg_notify(${tradesStoredChannel}, payload) FROM unnest(${payloads}::text[]) WITH ORDINALITY AS p(payload, n) ORDER BY n`);
}

/** JSON items in envelopes that stay under the NOTIFY payload limit. */
function chunked(items: readonly string[], envelope: (items: string) => string): string[] {
  const payloads: string[] = [];
  let chunk: string[] = [];
  let bytes = 0;
  for (const item of items) {
    if (chunk.length && bytes + item.length + 1 > maxNotifyBytes - 60) {
      payloads.push(envelope(chunk.join(',')));
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += item.length + 1;
  }
  if (chunk.length) payloads.push(envelope(chunk.join(',')));
  return payloads;
}

type StoredRow = TradeRow & { source: TradeSource; received_at: Date };

export async function fetchByIds(db: Queryable, ids: readonly string[]): Promise<Map<string, StoredRow>> {
  const rows = await db.query<StoredRow>(sql`
    SELECT t.id, t.trader_id, t.direction, t.price, t.quantity, t.delivery_day, t.delivery_start, t.delivery_end, t.execution_time, t.source, t.received_at
    FROM trade_keys k JOIN trades t ON t.id = k.id AND t.delivery_start = k.delivery_start
    WHERE k.id = ANY(${[...ids]}::text[])`);
  return new Map(rows.map((r) => [r.id, r]));
}

export interface TradeFilter {
  trader_id?: string;
  delivery_day?: string;
}

/** A listed trade; a recalled one carries when and why. */
export type ListedTrade = TradeRow & { recalled_at: Date | null; recall_reason: string | null };

/**
 * Trades in delivery order, read in keyset pages so that "all trades" never holds the whole
 * table in memory at once. Recalled trades are listed too, marked.
 */
export async function* listTrades(db: Db, filter: TradeFilter, tz: string, pageSize = 5000): AsyncGenerator<ListedTrade[]> {
  const bounds = filter.delivery_day ? dayBounds(filter.delivery_day, tz) : undefined;
  let after: { start: Date; id: string } | undefined;
  for (;;) {
    const conditions = [sql`TRUE`];
    if (filter.trader_id !== undefined) conditions.push(sql`t.trader_id = ${filter.trader_id}`);
    if (bounds) conditions.push(sql`t.delivery_start >= ${bounds.start} AND t.delivery_start < ${bounds.end}`);
    if (after) conditions.push(sql`(t.delivery_start, t.id) > (${after.start}::timestamptz, ${after.id})`);
    const page = await db.query<ListedTrade>(sql`
      SELECT t.id, t.trader_id, t.direction, t.price, t.quantity, t.delivery_day, t.delivery_start, t.delivery_end, t.execution_time, t.recalled_at, r.reason AS recall_reason
      FROM trades t LEFT JOIN deal_recalls r ON t.recalled_at IS NOT NULL AND r.id = t.id
      WHERE ${sql.join(conditions, sql` AND `)}
      ORDER BY t.delivery_start, t.id LIMIT ${pageSize}`);
    if (page.length) yield page;
    if (page.length < pageSize) return;
    const last = page[page.length - 1]!;
    after = { start: last.delivery_start, id: last.id };
  }
}
