// The same database contract on both adapters: embedded PGlite and postgres.js against the real
// PostgreSQL server on this machine (TEST_DATABASE_URL; TimescaleDB is not loaded there).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbedded } from '../server/db/embedded';
import { openServer } from '../server/db/server';
import { migrate, MissingTimescaleError, timescaleProblemMessage } from '../server/db/migrate';
import { sql, type Db } from '../server/db';
import { reachPostgres } from './helpers/databases';

const adapters: [string, () => Promise<Db | undefined>][] = [
  ['embedded PGlite', () => openEmbedded(undefined)],
  ['postgres.js server', () => reachPostgres()],
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

  run('bulk-inserts boolean columns', async (db) => {
    await db.query(sql`CREATE TEMP TABLE flags (id text PRIMARY KEY, flag boolean NOT NULL)`);
    expect(await db.bulkInsert('flags', [{ name: 'id', type: 'text' }, { name: 'flag', type: 'boolean' }], [['a', true], ['b', false], ['c', true]])).toBe(3);
    const rows = await db.query<{ id: string; flag: boolean }>(sql`SELECT id, flag FROM flags ORDER BY id`);
    expect(rows).toEqual([{ id: 'a', flag: true }, { id: 'b', flag: false }, { id: 'c', flag: true }]);
  });

  run('takes JSON text (or a value) for json and jsonb, in parameters and bulk inserts, and reads it back decoded', async (db) => {
    await db.query(sql`CREATE TEMP TABLE j (id int PRIMARY KEY, b jsonb, j json)`);
    const values: [unknown, string][] = [
      [{ a: 1, s: 'quote " and é', list: [1, 2.5, null], nested: { t: true } }, 'object'],
      [['x', { y: 2 }], 'array'], [42.5, 'number'], [false, 'boolean'], ['a JSON string', 'string'], [null, 'null'],
    ];
    for (const [i, [value]] of values.entries()) {
      await db.query(sql`INSERT INTO j VALUES (${i}, ${JSON.stringify(value)}::jsonb, ${JSON.stringify(value)}::json)`);
    }
    await db.bulkInsert('j', [{ name: 'id', type: 'int' }, { name: 'b', type: 'jsonb' }, { name: 'j', type: 'json' }], values.map(([value], i) => [100 + i, JSON.stringify(value), JSON.stringify(value)]));
    await db.query(sql`INSERT INTO j VALUES (200, ${{ passed: 'as a value' }}::jsonb, NULL)`);
    const rows = await db.query<{ id: number; b: unknown; j: unknown; t: string }>(sql`SELECT id, b, j, jsonb_typeof(b) AS t FROM j ORDER BY id`);
    const expected = values.map(([value, type], i) => ({ id: i, b: value, j: value, t: type }));
    expect(rows).toEqual([...expected, ...expected.map((r) => ({ ...r, id: r.id + 100 })), { id: 200, b: { passed: 'as a value' }, j: null, t: 'object' }]);
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
    const a = await reachPostgres();
    if (!a) return ctx.skip();
    const b = (await reachPostgres())!;
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
  it('refuses a PostgreSQL server without a working TimescaleDB and says why and how to fix it', async (ctx) => {
    const db = await reachPostgres();
    if (!db) return ctx.skip();
    try {
      // This server's real state decides which refusal is due: CI's has the TimescaleDB files but
      // does not preload them, other machines' have none.
      const [state] = await db.query<{ available: boolean }>(sql`SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available`);
      const tables = sql`SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`;
      const before = await db.query(tables);
      const error = await migrate(db).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MissingTimescaleError);
      expect((error as MissingTimescaleError).problem).toBe(state!.available ? 'not-preloaded' : 'not-installed');
      expect((error as Error).message).toBe(timescaleProblemMessage((error as MissingTimescaleError).problem));
      // Nothing was created, and the connection survived (CREATE EXTENSION was never tried).
      expect(await db.query(tables)).toEqual(before);
    } finally {
      await db.close();
    }
  });

  it('says for each missing part what is wrong and how to fix it', () => {
    const notInstalled = timescaleProblemMessage('not-installed');
    expect(notInstalled).toMatch(/TimescaleDB is not installed on this PostgreSQL server/);
    expect(notInstalled).toMatch(/docker compose up -d db/);
    const notPreloaded = timescaleProblemMessage('not-preloaded');
    expect(notPreloaded).toMatch(/installed but not preloaded: add it to shared_preload_libraries/);
    expect(notPreloaded).toMatch(/restart PostgreSQL/);
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
