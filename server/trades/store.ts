// Storing and reading trades. Ingestion is idempotent on the exchange's deal id across every
// source and process: a repeat with the same content is a duplicate, with other content a conflict.
import type { Db, Queryable } from '../db';
import { sql } from '../db';
import { dayBounds } from '../time/market-time';
import { trimDecimal } from './decimal';
import { bulkChunkRows, bulkInsertQuery } from '../db/bulk';
import { pnlSumsChange } from './pnl-sums';
import { apiProduct, toApiTrade, type ApiTrade, type RecalledTrade, type TradeRow, type TradeSource } from './normalize';

export type IngestStatus = 'stored' | 'duplicate' | 'conflict';

export interface IngestOutcome {
  id: string;
  status: IngestStatus;
  /** For a conflict: the API fields that differ from the stored trade. */
  differences?: string[];
  /** For a conflict: whose trade is stored under the id (a caller who may not see it learns only that the id is taken). */
  storedTraderId?: string;
  /** Stored from the exchange in place of a manual entry with the same id (kept in trades_superseded). */
  superseded?: { trader_id: string; differences: string[] };
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

/**
 * The API fields in which an offered trade differs from the stored one (the delivery product as
 * delivery_day, delivery_hour and delivery_period, as a client sends it).
 */
export function differences(stored: TradeRow, offered: TradeRow, tz: string): string[] {
  const out: string[] = [];
  if (stored.trader_id !== offered.trader_id) out.push('trader_id');
  if (stored.direction !== offered.direction) out.push('direction');
  if (trimDecimal(String(stored.price)) !== trimDecimal(String(offered.price))) out.push('price');
  if (trimDecimal(String(stored.quantity)) !== trimDecimal(String(offered.quantity))) out.push('quantity');
  if (stored.delivery_day !== offered.delivery_day) out.push('delivery_day');
  if (stored.delivery_start.getTime() !== offered.delivery_start.getTime() || stored.delivery_end.getTime() !== offered.delivery_end.getTime()) {
    const a = apiProduct(stored.delivery_day, stored.delivery_start, stored.delivery_end, tz);
    const b = apiProduct(offered.delivery_day, offered.delivery_start, offered.delivery_end, tz);
    if (a.hour !== b.hour) out.push('delivery_hour');
    if (a.period !== b.period) out.push('delivery_period');
    if (stored.delivery_day === offered.delivery_day && a.hour === b.hour && a.period === b.period) out.push('delivery_period');
  }
  if (stored.execution_time.getTime() !== offered.execution_time.getTime()) out.push('execution_time');
  return out;
}

/** Sources that speak for the exchange: their deal ids are the exchange's own. */
const exchangeSources: readonly TradeSource[] = ['feed', 'file'];

export async function ingestTrades(db: Db, rows: readonly TradeRow[], source: TradeSource, tz: string, receivedAt: Date): Promise<IngestOutcome[]> {
  return db.transaction((tx) => ingestTradesIn(tx, rows, source, tz, receivedAt));
}

/** ingestTrades inside the caller's transaction (the exchange session commits its seq with the deals). */
export async function ingestTradesIn(tx: Queryable, rows: readonly TradeRow[], source: TradeSource, tz: string, receivedAt: Date): Promise<IngestOutcome[]> {
  const outcomes: IngestOutcome[] = new Array(rows.length);
  // Within one batch the first occurrence of an id is the candidate; every other occurrence is
  // compared with what is stored under the id once the candidate was handled.
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
  const existing = candidates.filter((r) => !freshIds.has(r.id));
  const known: Map<string, TradeRow> = existing.length ? await fetchByIds(tx, existing.map((r) => r.id)) : new Map<string, TradeRow>();
  // The exchange's confirmation of a deal id wins over a manual entry that used the id first.
  const replacing: { row: TradeRow; old: StoredRow; diff: string[] }[] = [];
  for (const row of existing) {
    const current = known.get(row.id) as StoredRow | undefined;
    const diff = current ? differences(current, row, tz) : ['id'];
    const index = firstIndex.get(row.id)!;
    if (current && diff.length && exchangeSources.includes(source) && current.source === 'api') {
      replacing.push({ row, old: current, diff });
      known.set(row.id, row);
      outcomes[index] = { id: row.id, status: 'stored', superseded: { trader_id: current.trader_id, differences: diff } };
    } else {
      outcomes[index] = diff.length ? { id: row.id, status: 'conflict', differences: diff, storedTraderId: current?.trader_id } : { id: row.id, status: 'duplicate' };
    }
  }
  if (replacing.length) await supersede(tx, replacing, source, receivedAt);
  const toInsert = [...candidates.filter((r) => freshIds.has(r.id)), ...replacing.map((r) => r.row)];
  // A deal the exchange recalled before it arrived is stored as recalled.
  const recalls = toInsert.length ? await pendingRecalls(tx, toInsert.map((r) => r.id)) : new Map<string, { reason: string; recalled_at: Date }>();
  const values = toInsert.map((r) => [r.id, r.trader_id, r.direction, r.price, r.quantity, r.delivery_day, r.delivery_start, r.delivery_end, r.execution_time, source, receivedAt, recalls.get(r.id)?.recalled_at ?? null, r.after_gate_closure ?? false]);
  // Each statement stores its chunk and adds the rows that count to the PnL sums.
  for (let i = 0; i < values.length; i += bulkChunkRows) {
    await tx.query(sql`
      WITH stored AS (${bulkInsertQuery('trades', tradeColumns, values.slice(i, i + bulkChunkRows))}
        RETURNING trader_id, delivery_start, delivery_end, direction, price, quantity, recalled_at),
      counted AS (SELECT * FROM stored WHERE recalled_at IS NULL)
      ${pnlSumsChange(sql`counted`, 1)}`);
  }
  for (const row of toInsert) {
    known.set(row.id, row);
    outcomes[firstIndex.get(row.id)!] ??= { id: row.id, status: 'stored' };
  }
  // A superseded entry leaves its trader's PnL like a recalled deal: listeners refresh its hour.
  const gone = replacing.map((r) => ({ row: r.old, reason: `superseded by the exchange's deal ${r.row.id} (${source})`, recalled_at: receivedAt }));
  await announce(tx, source, toInsert.filter((r) => !recalls.has(r.id)), tz, [...toInsert.filter((r) => recalls.has(r.id)).map((r) => ({ row: r, ...recalls.get(r.id)! })), ...gone]);

  rows.forEach((row, i) => {
    if (outcomes[i]) return;
    const stored = known.get(row.id)!;
    const diff = differences(stored, row, tz);
    outcomes[i] = diff.length ? { id: row.id, status: 'conflict', differences: diff, storedTraderId: stored.trader_id } : { id: row.id, status: 'duplicate' };
  });
  return outcomes;
}

/** Moves manual entries out of trades (and their key to the exchange's deal), keeping them in trades_superseded. */
async function supersede(tx: Queryable, replacing: readonly { row: TradeRow; old: StoredRow; diff: string[] }[], source: TradeSource, at: Date): Promise<void> {
  const ids = replacing.map((r) => r.row.id);
  await tx.query(sql`
    WITH k AS (SELECT * FROM unnest(${ids}::text[], ${replacing.map((r) => r.old.delivery_start.toISOString())}::timestamptz[], ${replacing.map((r) => r.row.trader_id)}::text[], ${replacing.map((r) => JSON.stringify(r.diff))}::jsonb[]) AS k(id, delivery_start, exchange_trader_id, diff)),
    gone AS (DELETE FROM trades t USING k WHERE t.id = k.id AND t.delivery_start = k.delivery_start
      RETURNING t.id, t.trader_id, t.direction, t.price, t.quantity, t.delivery_day, t.delivery_start, t.delivery_end, t.execution_time, t.source, t.received_at, t.recalled_at),
    counted AS (SELECT * FROM gone WHERE recalled_at IS NULL),
    sums AS (${pnlSumsChange(sql`counted`, -1)})
    INSERT INTO trades_superseded (id, trader_id, direction, price, quantity, delivery_day, delivery_start, delivery_end, execution_time, source, received_at, superseded_at, superseded_by, exchange_trader_id, differences)
    SELECT g.id, g.trader_id, g.direction, g.price, g.quantity, g.delivery_day, g.delivery_start, g.delivery_end, g.execution_time, g.source, g.received_at, ${at}, ${source}, k.exchange_trader_id,
      ARRAY(SELECT jsonb_array_elements_text(k.diff))
    FROM gone g JOIN k ON k.id = g.id`);
  await tx.query(sql`
    UPDATE trade_keys SET delivery_start = k.delivery_start, first_source = ${source}
    FROM unnest(${ids}::text[], ${replacing.map((r) => r.row.delivery_start.toISOString())}::timestamptz[]) AS k(id, delivery_start)
    WHERE trade_keys.id = k.id`);
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
