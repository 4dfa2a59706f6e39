// Processes that start at the same moment on one database: migrations, the first admin, the
// chunk interval and the start-up materialisation must let every one of them come up. Migrations
// and users run against CI's PostgreSQL server (each test in a schema of its own); whole servers
// against a TimescaleDB server when TEST_TIMESCALE_URL names one.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { countUsers, ensureAdmin } from '../server/auth/users';
import { loadConfig } from '../server/config';
import { sql, type Db } from '../server/db';
import { defaultMigrationsDir, migrate } from '../server/db/migrate';
import { openServer } from '../server/db/server';
import { start, type RunningServer } from '../server/main';
import { checkApiTrade } from '../server/trades/normalize';
import { ingestTrades } from '../server/trades/store';
import { freshSchema, freshTimescaleDatabase } from './helpers/databases';
import { recordingLogger, trade } from './helpers/server';
import { until } from './helpers/wait';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!().catch(() => {});
});

/** `n` processes' connection pools on one fresh schema of the PostgreSQL server. */
async function pools(name: string, n: number): Promise<{ dbs: Db[]; url: string } | undefined> {
  const schema = await freshSchema(name);
  if (!schema) return undefined;
  cleanup.push(() => schema.drop());
  const dbs: Db[] = [];
  for (let i = 0; i < n; i++) dbs.push(await openServer(schema.url, { max: 3 }));
  cleanup.push(async () => { for (const db of dbs) await db.close(); });
  return { dbs, url: schema.url };
}

describe('processes starting at once on one PostgreSQL database', () => {
  it('applies each migration once and logs only what each process applied itself', async (ctx) => {
    const found = await pools('migrate', 4);
    if (!found) return ctx.skip();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pd-migrations-'));
    cleanup.push(() => fs.rm(dir, { recursive: true, force: true }));
    // The first file waits for a lock this test holds, so that all four runs are under way before
    // any finishes; the second runs outside a transaction.
    const gate = 7243199;
    await fs.writeFile(path.join(dir, '0001_first.sql'), `SELECT pg_advisory_xact_lock_shared(${gate});\nCREATE TABLE first_table (id int PRIMARY KEY);\n`);
    await fs.writeFile(path.join(dir, '0002_outside.sql'), '-- powerdesk:no-transaction\nCREATE TABLE outside_table (id int PRIMARY KEY);\n');
    await fs.writeFile(path.join(dir, '0003_third.sql'), 'INSERT INTO first_table VALUES (1);\n');
    const holder = postgres(found.url, { max: 1, onnotice: () => {} });
    cleanup.push(() => holder.end());
    await holder`SELECT pg_advisory_lock(${gate})`;
    const logged: string[][] = found.dbs.map(() => []);
    const runs = found.dbs.map((db, i) => migrate(db, { dir, requireTimescale: false, log: (m) => logged[i]!.push(m) }));
    await until(async () => {
      const [row] = await holder<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
      return row!.n >= 4;
    }, 'all four migration runs waiting');
    await holder`SELECT pg_advisory_unlock(${gate})`;
    const results = await Promise.all(runs);
    expect(results.flatMap((r) => r.applied).sort()).toEqual(['0001_first.sql', '0002_outside.sql', '0003_third.sql']);
    expect(logged.flat().sort()).toEqual(['applied 0001_first.sql', 'applied 0002_outside.sql', 'applied 0003_third.sql']);
    expect(await found.dbs[0]!.query(sql`SELECT version FROM schema_migrations ORDER BY version`)).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }]);
    expect(await found.dbs[0]!.query(sql`SELECT id FROM first_table`)).toEqual([{ id: 1 }]);
  });

  it('creates the first admin exactly once', async (ctx) => {
    const found = await pools('admin', 4);
    if (!found) return ctx.skip();
    await found.dbs[0]!.execScript(await fs.readFile(path.join(defaultMigrationsDir, '0003_users.sql'), 'utf8'));
    const results = await Promise.allSettled(found.dbs.map((db) => ensureAdmin(db, { user: 'admin', password: 'first-admin-password' })));
    expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(results.filter((r) => r.status === 'fulfilled' && r.value !== undefined)).toHaveLength(1);
    expect(await countUsers(found.dbs[0]!)).toBe(1);
  });
});

describe('servers starting at once on one TimescaleDB database', () => {
  it('all come up, with history to materialise, and only one applies the migrations', async (ctx) => {
    const database = await freshTimescaleDatabase('start', 'servers starting together on a TimescaleDB server');
    if (!database) return ctx.skip();
    cleanup.push(() => database.drop());
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: database.url, ADMIN_USER: 'admin', ADMIN_PASSWORD: 'first-admin-password', LOG_LEVEL: 'silent' });
    const servers: RunningServer[] = [];
    cleanup.push(async () => { for (const s of servers) await s.close(); });
    const log = recordingLogger();
    const attempt = async (n: number) => {
      const started = await Promise.allSettled(Array.from({ length: n }, () => start(config, { log })));
      for (const s of started) if (s.status === 'fulfilled') servers.push(s.value);
      return started.map((s) => (s.status === 'rejected' ? String(s.reason) : 'up'));
    };
    expect(await attempt(3)).toEqual(['up', 'up', 'up']);
    expect(log.entries.filter((e) => e.msg === 'migration').map((e) => e.fields?.file).sort()).toEqual((await fs.readdir(defaultMigrationsDir)).filter((f) => f.endsWith('.sql')).sort());
    // History for the start-up materialisation, then three more at once.
    const db = servers[0]!.deps.db;
    const rows = Array.from({ length: 3000 }, (_, i) => {
      const checked = checkApiTrade(trade({ id: `race-${i}`, trader_id: 'race', delivery_day: new Date(Date.UTC(2021, 0, 1) + (i % 900) * 86_400_000).toISOString().slice(0, 10), delivery_hour: 10 + (i % 12) }), 'Europe/Berlin');
      if (!checked.ok) throw new Error(checked.message);
      return checked.value;
    });
    await ingestTrades(db, rows, 'api', 'Europe/Berlin', new Date());
    while (servers.length) await servers.pop()!.close();
    expect(await attempt(3)).toEqual(['up', 'up', 'up']);
    const [count] = await servers[0]!.deps.db.query<{ n: number }>(sql`SELECT sum(trades)::int AS n FROM pnl_hourly WHERE trader_id = 'race'`);
    expect(count!.n).toBe(3000);
  }, 120_000);
});
