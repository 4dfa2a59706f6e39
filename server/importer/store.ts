// Server side of the nightly file import: import records, the batches uploaded through
// POST /v1/trades/batch, and the reconciliation of a file with what the live feed delivered.
import type { Db, Queryable } from '../db';
import { sql } from '../db';
import { dayBounds } from '../time/market-time';
import { toApiTrade, type ApiTrade, type TradeRow } from '../trades/normalize';
import { fetchByIds, type IngestOutcome } from '../trades/store';

export type ImportStatus = 'running' | 'done' | 'failed' | 'identical';

export interface ImportRecord {
  id: number;
  file_name: string;
  sha256: string;
  size_bytes: number;
  trading_day: string;
  status: ImportStatus;
  same_as: number | null;
  rows: number | null;
  stored: number;
  duplicates: number;
  conflicts: number;
  rejected: number | null;
  message: string | null;
  started_at: Date;
  finished_at: Date | null;
}

export interface ImportStart {
  file_name: string;
  sha256: string;
  size_bytes: number;
  trading_day: string;
}

export type BeginResult =
  | { outcome: 'started'; import: ImportRecord; done_batches: [number, number][] }
  | { outcome: 'resumed'; import: ImportRecord; done_batches: [number, number][] }
  | { outcome: 'identical'; import: ImportRecord; same_as: ImportRecord };

// Totals come from the batches, so a batch counted once stays counted once.
const importColumns = sql`
  i.id, i.file_name, i.sha256, i.size_bytes, i.trading_day, i.status, i.same_as, i.rows, i.rejected, i.message, i.started_at, i.finished_at,
  coalesce(b.stored, 0)::int AS stored, coalesce(b.duplicates, 0)::int AS duplicates, coalesce(b.conflicts, 0)::int AS conflicts`;
const importFrom = sql`
  imports i LEFT JOIN LATERAL (
    SELECT sum(stored) AS stored, sum(duplicates) AS duplicates, sum(conflicts) AS conflicts FROM import_batches WHERE import_id = i.id
  ) b ON TRUE`;

export async function getImport(db: Queryable, id: number): Promise<ImportRecord | undefined> {
  const [row] = await db.query<ImportRecord>(sql`SELECT ${importColumns} FROM ${importFrom} WHERE i.id = ${id}`);
  return row;
}

export async function listImports(db: Queryable, filter: { trading_day?: string; limit: number }): Promise<ImportRecord[]> {
  const where = filter.trading_day ? sql`WHERE i.trading_day = ${filter.trading_day}` : sql``;
  return db.query<ImportRecord>(sql`SELECT ${importColumns} FROM ${importFrom} ${where} ORDER BY i.id DESC LIMIT ${filter.limit}`);
}

async function doneBatches(db: Queryable, id: number): Promise<[number, number][]> {
  const rows = await db.query<{ first_line: number; last_line: number }>(sql`SELECT first_line, last_line FROM import_batches WHERE import_id = ${id} ORDER BY first_line`);
  return rows.map((r) => [r.first_line, r.last_line]);
}

/**
 * Starts reading a file's content, resumes the unfinished reading of the same content, or says
 * the content was already imported (re-delivery of an identical file: recorded, nothing else).
 */
export async function beginImport(db: Db, file: ImportStart, now: Date): Promise<BeginResult> {
  const found = await db.transaction(async (tx) => {
    const [existing] = await tx.query<{ id: number; status: ImportStatus }>(sql`
      SELECT id, status FROM imports WHERE sha256 = ${file.sha256} AND status IN ('running', 'done') ORDER BY id LIMIT 1 FOR UPDATE`);
    if (existing?.status === 'done') {
      const [row] = await tx.query<{ id: number }>(sql`
        INSERT INTO imports (file_name, sha256, size_bytes, trading_day, status, same_as, message, started_at, finished_at)
        VALUES (${file.file_name}, ${file.sha256}, ${file.size_bytes}, ${file.trading_day}, 'identical', ${existing.id},
                ${`identical to import ${existing.id}: nothing to do`}, ${now}, ${now})
        RETURNING id`);
      return { outcome: 'identical' as const, id: row!.id, sameAs: existing.id };
    }
    if (existing) return { outcome: 'resumed' as const, id: existing.id };
    const [row] = await tx.query<{ id: number }>(sql`
      INSERT INTO imports (file_name, sha256, size_bytes, trading_day, status, started_at)
      VALUES (${file.file_name}, ${file.sha256}, ${file.size_bytes}, ${file.trading_day}, 'running', ${now})
      RETURNING id`);
    return { outcome: 'started' as const, id: row!.id };
  });
  const record = (await getImport(db, found.id))!;
  if (found.outcome === 'identical') return { outcome: 'identical', import: record, same_as: (await getImport(db, found.sameAs))! };
  return { outcome: found.outcome, import: record, done_batches: await doneBatches(db, found.id) };
}

export class ImportStateError extends Error {}

/** The deal ids of an import's valid rows, each once. */
function fileIds(importId: number) {
  return sql`SELECT DISTINCT unnest(trade_ids) AS trade_id FROM import_batches WHERE import_id = ${importId}`;
}

/** Refuses batches for imports that do not exist or are no longer running. */
export async function assertRunning(db: Queryable, id: number): Promise<void> {
  const [row] = await db.query<{ status: ImportStatus }>(sql`SELECT status FROM imports WHERE id = ${id}`);
  if (!row) throw new ImportStateError(`import_id: no import ${id}`);
  if (row.status !== 'running') throw new ImportStateError(`import_id: import ${id} is ${row.status}, not running`);
}

export interface BatchRecord {
  import_id: number;
  first_line: number;
  last_line: number;
  received: number;
  invalid: number;
}

/**
 * After POST /v1/trades/batch stored a file batch: count it once, remember the file's deal ids (as one array per batch)
 * and keep the file's version of every row that disagreed with a stored trade.
 */
export async function recordImportBatch(db: Db, batch: BatchRecord, rows: readonly TradeRow[], outcomes: readonly IngestOutcome[], tz: string): Promise<void> {
  const count = (s: IngestOutcome['status']) => outcomes.filter((o) => o.status === s).length;
  await db.transaction(async (tx) => {
    await tx.query(sql`
      INSERT INTO import_batches (import_id, first_line, last_line, received, stored, duplicates, conflicts, invalid, trade_ids)
      VALUES (${batch.import_id}, ${batch.first_line}, ${batch.last_line}, ${batch.received}, ${count('stored')}, ${count('duplicate')}, ${count('conflict')}, ${batch.invalid}, ${rows.map((r) => r.id)}::text[])
      ON CONFLICT DO NOTHING`);
    const conflicts = outcomes.map((o, i) => ({ o, row: rows[i]! })).filter(({ o }) => o.status === 'conflict');
    if (conflicts.length) {
      await tx.bulkInsert('import_conflicts', [
        { name: 'import_id', type: 'bigint' }, { name: 'trade_id', type: 'text' }, { name: 'differences', type: 'jsonb' }, { name: 'file_trade', type: 'jsonb' },
      ], conflicts.map(({ o, row }) => [batch.import_id, row.id, JSON.stringify(o.differences ?? []), JSON.stringify(toApiTrade(row, tz))]), { ignoreConflicts: true });
    }
  });
}

export async function finishImport(db: Db, id: number, result: { status: 'done' | 'failed'; rows: number; rejected: number; message?: string }, now: Date): Promise<ImportRecord> {
  const updated = await db.query(sql`
    UPDATE imports SET status = ${result.status}, rows = ${result.rows}, rejected = ${result.rejected}, message = ${result.message ?? null}, finished_at = ${now}
    WHERE id = ${id} AND status = 'running' RETURNING id`);
  if (!updated.length) {
    const existing = await getImport(db, id);
    if (!existing) throw new ImportStateError(`no import ${id}`);
    throw new ImportStateError(`import ${id} is ${existing.status}, not running`);
  }
  return (await getImport(db, id))!;
}

export interface FieldDifference {
  field: keyof ApiTrade;
  file: unknown;
  feed: unknown;
}

export interface Reconciliation {
  import_id: number;
  file_name: string;
  trading_day: string;
  computed_at: Date;
  file_trades: number;
  feed_trades: number;
  matched: number;
  only_in_file: number;
  only_in_feed: number;
  different: number;
  /** Feed trades of the day that the exchange recalled: expected to be absent from the file, not counted above. */
  recalled: number;
  items: {
    only_in_file: string[];
    only_in_feed: string[];
    different: { trade_id: string; fields: FieldDifference[] }[];
  };
  /** True when an item list holds fewer ids than its count (see `limit`). */
  truncated: boolean;
}

const apiFields: (keyof ApiTrade)[] = ['price', 'quantity', 'direction', 'delivery_day', 'delivery_hour', 'delivery_period', 'trader_id', 'execution_time'];

/**
 * Compares an import's file with the feed, in the database where both are: file ids whose trade
 * was first stored by another source (the feed missed them), feed trades executed on the file's
 * trading day that the file lacks, and file rows that differ from the feed's version.
 */
export async function reconcileImport(db: Db, id: number, tz: string, now: Date): Promise<void> {
  const record = await getImport(db, id);
  if (!record) throw new ImportStateError(`import_id: no import ${id}`);
  if (record.status !== 'done') throw new ImportStateError(`import_id: import ${id} is ${record.status}; only a finished import can be reconciled`);
  const day = dayBounds(record.trading_day, tz);
  // Delivery follows execution, so trades of the day start after the day began: the bound lets
  // the hypertable skip older chunks (a day of margin for any clock skew of the exchange).
  const deliveryFrom = new Date(day.start.getTime() - 86_400_000);

  const conflicts = await db.query<{ trade_id: string; file_trade: ApiTrade }>(sql`
    SELECT c.trade_id, c.file_trade FROM import_conflicts c JOIN trade_keys k ON k.id = c.trade_id
    WHERE c.import_id = ${id} AND k.first_source = 'feed' ORDER BY c.trade_id`);
  const feedRows = conflicts.length ? await fetchByIds(db, conflicts.map((c) => c.trade_id)) : new Map();
  const different: { trade_id: string; fields: FieldDifference[] }[] = [];
  for (const c of conflicts) {
    const feed = feedRows.get(c.trade_id);
    if (!feed) continue;
    const feedTrade = toApiTrade(feed, tz);
    // A field the Trade leaves out (delivery_period of a plain hour) is null on that side.
    const fields = apiFields.filter((f) => c.file_trade[f] !== feedTrade[f]).map((f) => ({ field: f, file: c.file_trade[f] ?? null, feed: feedTrade[f] ?? null }));
    // Every conflict is a difference, counted as such even if the Trade could not show it, so
    // that the import's conflicts and the reconciliation never disagree.
    different.push({ trade_id: c.trade_id, fields });
  }

  await db.transaction(async (tx) => {
    await tx.query(sql`DELETE FROM reconciliations WHERE import_id = ${id}`);
    // A deal the exchange recalled is no longer in its file: expected to be absent, counted apart.
    const [counts] = await tx.query<{ file_trades: number; in_feed: number; feed_trades: number; recalled: number }>(sql`
      WITH file_ids AS (${fileIds(id)})
      SELECT
        (SELECT count(*)::int FROM file_ids) AS file_trades,
        (SELECT count(*)::int FROM file_ids f JOIN trade_keys k ON k.id = f.trade_id WHERE k.first_source = 'feed') AS in_feed,
        (SELECT count(*) FILTER (WHERE recalled_at IS NULL)::int FROM trades WHERE source = 'feed' AND execution_time >= ${day.start} AND execution_time < ${day.end} AND delivery_start >= ${deliveryFrom}) AS feed_trades,
        (SELECT count(*) FILTER (WHERE recalled_at IS NOT NULL)::int FROM trades WHERE source = 'feed' AND execution_time >= ${day.start} AND execution_time < ${day.end} AND delivery_start >= ${deliveryFrom}) AS recalled`);
    await tx.query(sql`
      INSERT INTO reconciliations (import_id, trading_day, computed_at, file_trades, feed_trades, matched, only_in_file, only_in_feed, different, recalled)
      VALUES (${id}, ${record.trading_day}, ${now}, ${counts!.file_trades}, ${counts!.feed_trades}, ${counts!.in_feed - different.length}, 0, 0, ${different.length}, ${counts!.recalled})`);
    await tx.query(sql`
      WITH file_ids AS (${fileIds(id)})
      INSERT INTO reconciliation_items (import_id, kind, trade_id)
      SELECT ${id}::bigint, 'only_in_feed', t.id FROM trades t
      WHERE t.source = 'feed' AND t.execution_time >= ${day.start} AND t.execution_time < ${day.end} AND t.delivery_start >= ${deliveryFrom}
        AND t.recalled_at IS NULL AND NOT EXISTS (SELECT 1 FROM file_ids f WHERE f.trade_id = t.id)
      ON CONFLICT DO NOTHING`);
    if (different.length) {
      await tx.bulkInsert('reconciliation_items', [
        { name: 'import_id', type: 'bigint' }, { name: 'kind', type: 'text' }, { name: 'trade_id', type: 'text' }, { name: 'fields', type: 'jsonb' },
      ], different.map((d) => [id, 'different', d.trade_id, JSON.stringify(d.fields)]));
    }
    // Only-in-file ids are not copied: who first stored a deal never changes, so they are read
    // from the batches' trade_ids and trade_keys when asked for (a whole day's file when the feed was down).
    await tx.query(sql`
      UPDATE reconciliations SET
        only_in_file = ${counts!.file_trades - counts!.in_feed},
        only_in_feed = (SELECT count(*) FROM reconciliation_items WHERE import_id = ${id} AND kind = 'only_in_feed')
      WHERE import_id = ${id}`);
  });
}

export async function getReconciliations(db: Queryable, filter: { trading_day?: string; import_id?: number; limit: number }): Promise<Reconciliation[]> {
  const conditions = [sql`TRUE`];
  if (filter.trading_day) conditions.push(sql`r.trading_day = ${filter.trading_day}`);
  if (filter.import_id !== undefined) conditions.push(sql`r.import_id = ${filter.import_id}`);
  const heads = await db.query<Omit<Reconciliation, 'items' | 'truncated'>>(sql`
    SELECT r.import_id, i.file_name, r.trading_day, r.computed_at, r.file_trades, r.feed_trades, r.matched, r.only_in_file, r.only_in_feed, r.different, r.recalled
    FROM reconciliations r JOIN imports i ON i.id = r.import_id
    WHERE ${sql.join(conditions, sql` AND `)} ORDER BY r.import_id DESC`);
  const out: Reconciliation[] = [];
  for (const head of heads) {
    const items = await db.query<{ kind: string; trade_id: string; fields: FieldDifference[] | null }>(sql`
      (SELECT 'only_in_file' AS kind, f.trade_id, NULL::jsonb AS fields FROM (${fileIds(head.import_id)}) f JOIN trade_keys k ON k.id = f.trade_id
       WHERE k.first_source <> 'feed' ORDER BY f.trade_id LIMIT ${filter.limit})
      UNION ALL
      (SELECT kind, trade_id, fields FROM reconciliation_items WHERE import_id = ${head.import_id} AND kind = 'only_in_feed' ORDER BY trade_id LIMIT ${filter.limit})
      UNION ALL
      (SELECT kind, trade_id, fields FROM reconciliation_items WHERE import_id = ${head.import_id} AND kind = 'different' ORDER BY trade_id LIMIT ${filter.limit})`);
    const result: Reconciliation = {
      ...head,
      items: {
        only_in_file: items.filter((i) => i.kind === 'only_in_file').map((i) => i.trade_id),
        only_in_feed: items.filter((i) => i.kind === 'only_in_feed').map((i) => i.trade_id),
        different: items.filter((i) => i.kind === 'different').map((i) => ({ trade_id: i.trade_id, fields: i.fields ?? [] })),
      },
      truncated: false,
    };
    result.truncated = result.items.only_in_file.length < head.only_in_file || result.items.only_in_feed.length < head.only_in_feed || result.items.different.length < head.different;
    out.push(result);
  }
  return out;
}
