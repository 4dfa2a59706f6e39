import { openEmbedded } from './embedded';
import { openServer } from './server';
import type { Db } from './types';

export type { Db, Queryable, Row, BulkColumn } from './types';
export { sql } from './sql';

export interface DbOptions {
  databaseUrl?: string;
  /** Embedded data directory; undefined keeps the embedded database in memory. */
  dataDir?: string;
}

/** DATABASE_URL set: a TimescaleDB server through postgres.js; otherwise embedded PGlite. */
export function openDb(options: DbOptions): Promise<Db> {
  return options.databaseUrl ? openServer(options.databaseUrl) : openEmbedded(options.dataDir);
}
