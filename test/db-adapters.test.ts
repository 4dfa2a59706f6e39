// The same database contract on both adapters: embedded PGlite and postgres.js against the real
// PostgreSQL server on this machine (TEST_DATABASE_URL; it has no TimescaleDB).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbedded } from '../server/db/embedded';
import { openServer } from '../server/db/server';
import { migrate, MissingTimescaleError } from '../server/db/migrate';
import { sql, type Db } from '../server/db';

const serverUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function reachServer(): Promise<Db | undefined> {
  try {
    return await openServer(serverUrl, { max: 2 }); // an advisory lock holds one connection of its own
  } catch (error) {
    const message = `PostgreSQL at ${serverUrl} is not reachable (${(error as Error).message}): the postgres.js adapter suite cannot run`;
    if (process.env.CI) throw new Error(`${message}; CI is set, so this is a failure`);
    console.warn(`\n!!! SKIPPING: ${message}. Set TEST_DATABASE_URL to a reachable server. !!!\n`);
    return undefined;
  }
}

const adapters: [string, () => Promise<Db | undefined>][] = [
  ['embedded PGlite', () => openEmbedded(undefined)],
  ['postgres.js server', reachServer],
];

describe.each(adapters)('the %s adapter', (_name, open) => {
  let db: Db | undefined;
  beforeAll(async () => {
    db = await open();
    if (!db) return;
    await db.query(sql`CREATE TEMP TABLE t (id text PRIMARY KEY, amount numeric, at timestamptz, day date, big bigint)`);
  });
  afterAll(async () => { await db?.close(); });
  const run = (title: string, fn: (db: Db) => Promise<void>) => it(title, async (ctx) => {
    if (!db) return ctx.skip();
    await fn(db);
  });

  run('passes values as parameters, never as SQL text', async (db) => {
    const hostile = `x'); DROP TABLE t; --`;
    const [row] = await db.query<{ s: string; n: number }>(sql`SELECT ${hostile}::text AS s, ${41}::int + 1 AS n`);
    expect(row).toEqual({ s: hostile, n: 42 });
    const [count] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM t`);
    expect(count!.n).toBe(0);
  });

  run('composes fragments in order', async (db) => {
    const conditions = [sql`x > ${1}`, sql`x < ${5}`];
    const rows = await db.query<{ x: number }>(sql`SELECT x FROM generate_series(0, 6) AS x WHERE ${sql.join(conditions, sql` AND `)} ORDER BY x`);
    expect(rows.map((r) => r.x)).toEqual([2, 3, 4]);
  });

  run('round-trips numeric exactly, timestamptz as UTC Date, date as text and bigint as number', async (db) => {
    await db.query(sql`INSERT INTO t VALUES (${'r'}, ${'12345678901234.123456789'}, ${new Date('2023-10-29T01:30:00.123Z')}, ${'2023-10-29'}, ${'9007199254740991'})`);
    const [row] = await db.query(sql`SELECT amount, at, day, big, amount * 3 AS tripled, ${'0.1'}::numeric + ${'0.2'}::numeric AS sum FROM t WHERE id = ${'r'}`);
    expect(row).toEqual({
      amount: '12345678901234.123456789', at: new Date('2023-10-29T01:30:00.123Z'), day: '2023-10-29', big: 9007199254740991,
      tripled: '37037036703702.370370367', sum: '0.3',
    });
    await expect(db.query(sql`SELECT 9007199254740993::bigint AS too_big`)).rejects.toThrow(/does not fit a JS number/);
  });

  run('rolls a transaction back when its function throws', async (db) => {
    await expect(db.transaction(async (tx) => {
      await tx.query(sql`INSERT INTO t (id) VALUES (${'rolled'})`);
      throw new Error('changed my mind');
    })).rejects.toThrow('changed my mind');
    expect(await db.query(sql`SELECT id FROM t WHERE id = ${'rolled'}`)).toEqual([]);
    await db.transaction(async (tx) => { await tx.query(sql`INSERT INTO t (id) VALUES (${'kept'})`); });
    expect(await db.query(sql`SELECT id FROM t WHERE id = ${'kept'}`)).toEqual([{ id: 'kept' }]);
  });

  run('bulk-inserts thousands of rows and can ignore conflicts', async (db) => {
    const columns = [{ name: 'id', type: 'text' }, { name: 'amount', type: 'numeric' }, { name: 'at', type: 'timestamptz' }];
    const rows = Array.from({ length: 12_000 }, (_, i) => [`bulk-${i}`, `${i}.01`, new Date(Date.UTC(2023, 0, 1, 0, i))]);
    expect(await db.bulkInsert('t', columns, rows)).toBe(12_000);
    expect(await db.bulkInsert('t', columns, [['bulk-0', '1', null], ['bulk-new', '2', null]], { ignoreConflicts: true })).toBe(1);
    const [sum] = await db.query<{ s: string; n: number }>(sql`SELECT sum(amount) AS s, count(*)::int AS n FROM t WHERE id LIKE 'bulk-%'`);
    // Σ i for i < 12000, plus 12000 × 0.01, plus the 2 of bulk-new; numeric keeps the scale of 2.
    expect(sum).toEqual({ s: `${(11_999 * 12_000) / 2 + 120 + 2}.00`, n: 12_001 });
    await expect(db.bulkInsert('t; DROP TABLE t', columns, rows)).rejects.toThrow(/not a safe SQL identifier/);
  });

  run('delivers a NOTIFY to a listener, and stops after unlisten', async (db) => {
    const got: string[] = [];
    let arrived!: () => void;
    const first = new Promise<void>((resolve) => { arrived = resolve; });
    const unlisten = await db.listen('pd_test_channel', (payload) => { got.push(payload); arrived(); });
    await db.notify('pd_test_channel', '{"hello":"world"}');
    await first;
    expect(got).toEqual(['{"hello":"world"}']);
    await unlisten();
    await db.notify('pd_test_channel', 'after');
    await db.query(sql`SELECT 1`); // a round trip after which a delivered notification would have arrived
    expect(got).toEqual(['{"hello":"world"}']);
  });

  run('holds an advisory lock that others see in pg_locks until it is released', async (db) => {
    const held = () => db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = 4711::oid AND objid = 815::oid AND objsubid = 2`);
    const lock = await db.advisoryLock(4711, 815);
    expect(lock).not.toBeNull();
    expect(await held()).toEqual([{ n: 1 }]);
    expect(await lock!.renew()).toBe(true);
    await lock!.release();
    expect(await held()).toEqual([{ n: 0 }]);
  });
});

describe('advisory locks on the server', () => {
  it('refuses a lock another session holds and gives it to the next once the holder closes', async (ctx) => {
    const a = await reachServer();
    if (!a) return ctx.skip();
    const b = (await reachServer())!;
    try {
      const lock = await a.advisoryLock(4711, 816);
      expect(lock).not.toBeNull();
      expect(await b.advisoryLock(4711, 816)).toBeNull();
      await a.close(); // the holder's connections end: the database drops the lock
      const next = await b.advisoryLock(4711, 816);
      expect(next).not.toBeNull();
      await next!.release();
    } finally {
      await a.close().catch(() => {});
      await b.close();
    }
  });
});

describe('migrations', () => {
  it('refuses a PostgreSQL server without TimescaleDB and says how to get one', async (ctx) => {
    const db = await reachServer();
    if (!db) return ctx.skip();
    try {
      const error = await migrate(db).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MissingTimescaleError);
      expect((error as Error).message).toMatch(/no TimescaleDB extension/);
      expect((error as Error).message).toMatch(/docker compose up -d db/);
      expect(await db.query(sql`SELECT 1 FROM pg_tables WHERE tablename = 'schema_migrations' AND schemaname = current_schema()`)).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('applies every migration once on the embedded database and records it', async () => {
    const db = await openEmbedded(undefined);
    try {
      const first = await migrate(db);
      expect(first.applied.length).toBeGreaterThanOrEqual(4);
      expect(first.applied[0]).toBe('0001_timescaledb.sql');
      const second = await migrate(db);
      expect(second.applied).toEqual([]);
      const [row] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM schema_migrations`);
      expect(row!.n).toBe(first.applied.length);
      const [hyper] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM timescaledb_information.hypertables WHERE hypertable_name = 'trades'`);
      expect(hyper!.n).toBe(1);
    } finally {
      await db.close();
    }
  });
});
