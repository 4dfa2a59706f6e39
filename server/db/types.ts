// The one small interface every capability uses to reach the database. Two adapters
// implement it (embedded PGlite, postgres.js); the SQL is the same on both, and so are values:
// numeric comes back as an exact decimal string, bigint as a number (refused beyond 2^53), date as
// 'YYYY-MM-DD', timestamptz as a Date. JSON goes in as JSON text (`${JSON.stringify(v)}::jsonb`,
// also as elements of a jsonb[] column of bulkInsert) and comes back decoded (server/db/parse.ts).
import type { SqlQuery } from './sql';

export type Row = Record<string, unknown>;

export interface Queryable {
  /** Runs one parameterised statement and returns its rows. */
  query<T extends object = Row>(query: SqlQuery): Promise<T[]>;
  /** Inserts many rows in one statement per chunk (unnest of typed arrays). */
  bulkInsert(table: string, columns: readonly BulkColumn[], rows: readonly unknown[][], options?: BulkOptions): Promise<number>;
  /**
   * COPY of CSV text (no header) into the columns, where the adapter has a faster path than
   * INSERT (embedded PGlite: COPY FROM '/dev/blob', ~25% faster than unnest). Values come from
   * code that validated them; the text is not escaped here.
   */
  copyCsv?(table: string, columns: readonly string[], csv: string): Promise<number>;
}

export interface BulkColumn {
  name: string;
  /** SQL type of the column, e.g. `text`, `numeric`, `timestamptz`. */
  type: string;
}

export interface BulkOptions {
  /** `ON CONFLICT DO NOTHING` instead of failing on a duplicate key. */
  ignoreConflicts?: boolean;
}

export interface Db extends Queryable {
  readonly kind: 'embedded' | 'server';
  /** Runs `fn` in one transaction; a thrown error rolls it back. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs a script of several statements without parameters (migrations). */
  execScript(text: string, options?: { transaction?: boolean }): Promise<void>;
  /**
   * Runs `fn` while holding `lock` (a key of server/db/locks.ts), which every process on this
   * database respects: on a server a transaction-level advisory lock, held by a connection of its
   * own while `fn` uses the others (so `fn` may run statements that refuse a transaction, such as
   * a continuous aggregate refresh); embedded, one process holds the database, so a queue in it.
   */
  exclusive<T>(lock: number, fn: () => Promise<T>): Promise<T>;
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  /**
   * Takes the session-level advisory lock (namespace, key) and holds it on a connection of its
   * own for as long as this process lives (the database drops it when the process dies, even by
   * kill -9); null when another session holds it. Others see it in pg_locks.
   */
  advisoryLock(namespace: number, key: number): Promise<HeldLock | null>;
  close(): Promise<void>;
}

export interface HeldLock {
  /** true while held; takes it again on a new connection when the old one was lost. */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}
