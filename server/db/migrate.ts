// Forward-only migrations: sql/NNNN_name.sql, each applied once, in order, and recorded with
// its checksum. An applied file that has since changed is refused rather than re-run.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { locks } from './locks';
import { sql } from './sql';
import type { Db } from './types';

export const defaultMigrationsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../sql');

/** First line of a migration that must run outside a transaction (e.g. refreshing an aggregate). */
const noTransactionMarker = '-- powerdesk:no-transaction';

export interface Migration {
  version: number;
  name: string;
  file: string;
  text: string;
  checksum: string;
}

/** What is missing: the extension's files on the server, or the server loading it at start. */
export type TimescaleProblem = 'not-installed' | 'not-preloaded';

const getTimescale =
  'Start the TimescaleDB server that comes with the project with `docker compose up -d db` and point DATABASE_URL at it, ' +
  'or unset DATABASE_URL to use the embedded TimescaleDB under DATA_DIR.';

export function timescaleProblemMessage(problem: TimescaleProblem): string {
  return problem === 'not-installed'
    ? 'TimescaleDB is not installed on this PostgreSQL server (pg_available_extensions has no "timescaledb"), and powerdesk ' +
        `needs hypertables and continuous aggregates. Install TimescaleDB on the server, or: ${getTimescale}`
    : 'TimescaleDB is installed but not preloaded: add it to shared_preload_libraries of this PostgreSQL server ' +
        "(shared_preload_libraries = 'timescaledb' in postgresql.conf, or ALTER SYSTEM SET shared_preload_libraries = 'timescaledb' " +
        `as a superuser) and restart PostgreSQL. Or: ${getTimescale}`;
}

export class MissingTimescaleError extends Error {
  constructor(readonly problem: TimescaleProblem) {
    super(timescaleProblemMessage(problem));
    this.name = 'MissingTimescaleError';
  }
}

export function loadMigrations(dir = defaultMigrationsDir): Migration[] {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  const seen = new Map<number, string>();
  return files.map((file) => {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) throw new Error(`migration file name ${file} is not NNNN_snake_name.sql`);
    const version = Number(match[1]);
    const other = seen.get(version);
    if (other) throw new Error(`migrations ${other} and ${file} share version ${version}`);
    seen.set(version, file);
    const text = fs.readFileSync(path.join(dir, file), 'utf8');
    const checksum = crypto.createHash('sha256').update(text).digest('hex');
    return { version, name: match[2]!, file, text, checksum };
  });
}

/**
 * Refuses a server without a working TimescaleDB before any migration runs. A server that has the
 * files but does not preload the library answers CREATE EXTENSION with a FATAL error that ends the
 * connection, so that case is recognised first: the preloaded loader defines the
 * timescaledb.disable_load setting, which any user may read (shared_preload_libraries itself is
 * readable only by superusers). PGlite loads the extension itself: only the availability applies.
 */
export async function assertTimescaleAvailable(db: Db): Promise<void> {
  const [row] = await db.query<{ available: boolean; preloaded: boolean }>(sql`
    SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
           current_setting('timescaledb.disable_load', true) IS NOT NULL AS preloaded`);
  if (!row?.available) throw new MissingTimescaleError('not-installed');
  if (db.kind === 'server' && !row.preloaded) throw new MissingTimescaleError('not-preloaded');
}

export interface MigrateResult {
  /** The files this call applied (not those another process applied meanwhile). */
  applied: string[];
  alreadyApplied: number;
}

/**
 * Applies the pending migrations. Several processes may start at once on one database: the run
 * holds the migrations lock, so the others wait, then find nothing pending (and say so: only
 * what this call applied is logged and returned). Each file's transaction also takes the per-file
 * lock and skips a file recorded meanwhile, which keeps earlier versions that only know that
 * lock from applying a file twice.
 */
export async function migrate(db: Db, options: { dir?: string; log?: (msg: string) => void; requireTimescale?: boolean } = {}): Promise<MigrateResult> {
  if (options.requireTimescale !== false) await assertTimescaleAvailable(db);
  const migrations = loadMigrations(options.dir);
  return db.exclusive(locks.migrations, async () => {
    await db.execScript(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         checksum text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
      { transaction: false },
    );
    const applied = new Map((await appliedMigrations(db)).map((m) => [m.version, m]));
    for (const m of migrations) {
      const done = applied.get(m.version);
      if (done && done.checksum !== m.checksum) {
        throw new Error(`migration ${m.file} was changed after it was applied; migrations are forward-only: add a new file instead`);
      }
    }
    const result: MigrateResult = { applied: [], alreadyApplied: applied.size };
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      if (await applyOne(db, m)) {
        options.log?.(`applied ${m.file}`);
        result.applied.push(m.file);
      } else {
        result.alreadyApplied += 1;
      }
    }
    return result;
  });
}

/** Applies one file and records it; false when another process had recorded it first. */
async function applyOne(db: Db, m: Migration): Promise<boolean> {
  const record = `INSERT INTO schema_migrations (version, name, checksum) VALUES (${m.version}, '${m.name}', '${m.checksum}') ON CONFLICT (version) DO NOTHING;`;
  if (m.text.startsWith(noTransactionMarker)) {
    await db.execScript(m.text, { transaction: false }).catch((error: Error) => { throw new Error(`migration ${m.file} failed: ${error.message}`, { cause: error }); });
    await db.execScript(record, { transaction: false });
    return true;
  }
  try {
    await db.execScript(
      `SELECT pg_advisory_xact_lock(${locks.migrationFile});
       DO $$ BEGIN IF EXISTS (SELECT 1 FROM schema_migrations WHERE version = ${m.version}) THEN RAISE EXCEPTION 'powerdesk:already-applied'; END IF; END $$;
       ${m.text}
       ;${record}`,
    );
    return true;
  } catch (error) {
    if (String((error as Error).message).includes('powerdesk:already-applied')) return false;
    throw new Error(`migration ${m.file} failed: ${(error as Error).message}`, { cause: error });
  }
}

export async function appliedMigrations(db: Db): Promise<{ version: number; checksum: string }[]> {
  return db.query<{ version: number; checksum: string }>(sql`SELECT version, checksum FROM schema_migrations ORDER BY version`);
}

/** Pending migrations, for readiness: [] when the database is up to date. */
export async function pendingMigrations(db: Db, dir?: string): Promise<string[]> {
  const applied = new Set((await appliedMigrations(db)).map((m) => m.version));
  return loadMigrations(dir).filter((m) => !applied.has(m.version)).map((m) => m.file);
}
