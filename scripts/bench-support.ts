// Helpers for the npm run bench:* scripts: a fresh database on either engine, a real server in a
// child process on it, percentiles, and a figure printer.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { openDb, type Db } from '../server/db';

/**
 * Where a bench keeps its data. Without DATABASE_URL: a new embedded database in a temporary
 * directory. With it: a new database on that TimescaleDB server (its user needs CREATEDB), dropped
 * at the end, so a bench never writes into the database the URL names.
 */
export interface BenchDatabase {
  kind: 'embedded' | 'server';
  /** Says which engine, for the printed figures. */
  label: string;
  /** The variables a server process needs to use it. */
  env: Record<string, string>;
  open(): Promise<Db>;
  drop(): Promise<void>;
}

export async function benchDatabase(name: string): Promise<BenchDatabase> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `pd-bench-${name}-`));
    return {
      kind: 'embedded', label: 'embedded TimescaleDB (PGlite, in the server process)', env: { DATA_DIR: dataDir, DATABASE_URL: '' },
      open: () => openDb({ dataDir }),
      drop: async () => fs.rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const database = `pd_bench_${name.replace(/[^a-z0-9]/g, '_')}_${crypto.randomBytes(3).toString('hex')}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${database}`);
  const [version] = await admin<{ v: string | null }[]>`SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS v`;
  const [server] = await admin<{ v: string }[]>`SELECT current_setting('server_version') AS v`;
  await admin.end();
  const target = new URL(url);
  target.pathname = `/${database}`;
  return {
    kind: 'server',
    label: `TimescaleDB server ${target.host} (PostgreSQL ${server!.v}${version?.v ? `, TimescaleDB ${version.v}` : ''}), database ${database}`,
    env: { DATABASE_URL: target.toString() },
    open: () => openDb({ databaseUrl: target.toString() }),
    async drop() {
      const again = postgres(url, { max: 1, onnotice: () => {} });
      await again.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await again.end();
    },
  };
}

export interface BenchServer {
  url: string;
  auth: string;
  child: ChildProcess;
  database: BenchDatabase;
  /** Stops the process; drops a database it made itself unless `keep`. */
  stop(options?: { keep?: boolean }): Promise<void>;
}

/** A server process on `database` (a fresh one when not given; dropped by stop() then). */
export async function startBenchServer(env: Record<string, string> = {}, port = 18000 + Math.floor(Math.random() * 1000), given?: BenchDatabase): Promise<BenchServer> {
  const database = given ?? (await benchDatabase('server'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    env: { ...process.env, PORT: String(port), ADMIN_USER: 'bench', ADMIN_PASSWORD: 'bench-password', LOG_LEVEL: 'warn', ...database.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error('the server did not become ready within 120 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url, child, database,
    auth: `Basic ${Buffer.from('bench:bench-password').toString('base64')}`,
    async stop(options = {}) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      if (!options.keep && !given) await database.drop();
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function report(title: string, figures: Record<string, string | number>): void {
  process.stdout.write(`\n${title}\n`);
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  for (const [k, v] of Object.entries(figures)) process.stdout.write(`  ${k.padEnd(width)}  ${typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : v}\n`);
}

/** Sends `deals` to the simulator at `rate` a second, evenly; records when each left in `sentAt`. */
export function sendAtRate(sim: { send(frame: object): void }, deals: readonly { id: string }[], rate: number, sentAt: Map<string, number>): Promise<void> {
  const started = performance.now();
  let sent = 0;
  return new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(deals.length, Math.floor(((performance.now() - started) / 1000) * rate));
      for (; sent < due; sent++) {
        const deal = deals[sent]!;
        sentAt.set(deal.id, performance.now());
        sim.send({ deal_confirmation: deal });
      }
      if (sent >= deals.length) { clearInterval(timer); resolve(); }
    }, 2);
  });
}
