// Every json/jsonb column the application writes, written by its real code path and read back, on
// both adapters: embedded PGlite, postgres.js against CI's PostgreSQL server (the tables rebuilt
// there as plain tables) and, where TEST_TIMESCALE_URL names one, a TimescaleDB server.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeSim } from '../scripts/exchange-sim';
import { sql, type Db } from '../server/db';
import { openEmbedded } from '../server/db/embedded';
import { defaultMigrationsDir, loadMigrations, migrate } from '../server/db/migrate';
import { openServer } from '../server/db/server';
import { FeedGateway } from '../server/feed/gateway';
import { beginImport, finishImport, getReconciliations, reconcileImport, recordImportBatch } from '../server/importer/store';
import { createRun, getRun } from '../server/meters/runs-store';
import { Trading } from '../server/orders/trading';
import { createLogger } from '../server/log';
import { checkApiTrade, type TradeRow } from '../server/trades/normalize';
import { ingestTrades } from '../server/trades/store';
import { freshSchema, freshTimescaleDatabase } from './helpers/databases';
import { jsonColumns, plainTablesDdl, type JsonColumn } from './helpers/plain-schema';
import { trade } from './helpers/server';
import { until } from './helpers/wait';

const tz = 'Europe/Berlin';
/** The columns the tests below write and read back; the schema must have no other. */
const covered: JsonColumn[] = [];

let reference: Db; // migrated embedded database: its catalog is the schema's truth
beforeAll(async () => {
  reference = await openEmbedded(undefined);
  await migrate(reference);
});
afterAll(async () => { await reference?.close(); });

interface Target { db: Db; close(): Promise<void> }

const targets: [string, () => Promise<Target | undefined>][] = [
  ['embedded PGlite', async () => ({ db: reference, close: async () => {} })],
  ['postgres.js on PostgreSQL (plain tables)', async () => {
    const schema = await freshSchema('json');
    if (!schema) return undefined;
    const db = await openServer(schema.url, { max: 4 });
    for (const statement of await plainTablesDdl(reference)) await db.execScript(statement, { transaction: false });
    return { db, close: async () => { await db.close(); await schema.drop(); } };
  }],
  ['postgres.js on TimescaleDB', async () => {
    const database = await freshTimescaleDatabase('json', 'the JSON round trip on a TimescaleDB server');
    if (!database) return undefined;
    const db = await openServer(database.url, { max: 4 });
    await migrate(db);
    return { db, close: async () => { await db.close(); await database.drop(); } };
  }],
];

function row(overrides: Record<string, unknown>): TradeRow {
  const checked = checkApiTrade(trade(overrides), tz);
  if (!checked.ok) throw new Error(checked.message);
  return checked.value;
}

/** jsonb_typeof of each row's value: 'object' or 'array' where a JSON string would say 'string'. */
async function typesOf(db: Db, query: ReturnType<typeof sql>): Promise<string[]> {
  return (await db.query<{ t: string }>(query)).map((r) => r.t);
}

function cover(table: string, column: string, type: 'json' | 'jsonb' = 'jsonb') {
  if (!covered.some((c) => c.table === table && c.column === column)) covered.push({ table, column, type });
}

describe.each(targets)('JSON written by the application on %s', (_name, open) => {
  let target: Target | undefined;
  beforeAll(async () => { target = await open(); });
  afterAll(async () => { await target?.close(); });
  const run = (title: string, fn: (db: Db) => Promise<void>) => it(title, async (ctx) => {
    if (!target) return ctx.skip();
    await fn(target.db);
  });

  run('keeps an algorithm run\'s params an object, not a JSON string', async (db) => {
    const params = { threshold: 0.5, name: 'matcher "v2"', windows: [1, 2.5], nested: { off: null, on: true } };
    const created = await createRun(db, { algorithm: 'json', version: '1', params, input_from: new Date('2018-06-13T00:00:00Z'), input_to: new Date('2018-06-27T00:00:00Z'), created_by: 'test', now: new Date() });
    expect(created.params).toEqual(params);
    expect((await getRun(db, created.id))!.params).toEqual(params);
    expect(await typesOf(db, sql`SELECT jsonb_typeof(params) AS t FROM algorithm_runs WHERE id = ${created.id}`)).toEqual(['object']);
    cover('algorithm_runs', 'params');
  });

  run('keeps an order\'s content and its message to the exchange as objects', async (db) => {
    const trading = new Trading({ db, tz, clock: { now: () => new Date('2031-01-10T09:00:00Z') }, log: createLogger('silent'), gateClosureMinutes: 5, marketHoldPrice: '9999', shortLimitMw: '0' });
    const trader = `json_o_${crypto.randomBytes(3).toString('hex')}`;
    await trading.cash(trader, 100_000n, 'json test');
    const { order } = await trading.place({ trader_id: trader, client_order_id: `${trader}-1`, side: 'buy', type: 'limit', time_in_force: 'gtc', delivery_day: '2031-01-11', delivery_hour: 8, quantity: 1.5, limit_price: 4250 });
    const [stored] = await db.query<{ content: Record<string, unknown>; frame: Record<string, unknown> }>(sql`
      SELECT o.content, x.frame FROM orders o JOIN outbox x ON x.order_id = o.id AND x.destination = 'exchange' WHERE o.id = ${order.id}::uuid`);
    expect(stored!.content).toMatchObject({ side: 'buy', type: 'limit', quantity: '1.5' });
    expect(stored!.frame).toMatchObject({ order_new: { client_order_id: order.id, trader_id: trader, side: 'buy', quantity: 1.5 } });
    expect(await typesOf(db, sql`SELECT jsonb_typeof(content) AS t FROM orders WHERE id = ${order.id}::uuid`)).toEqual(['object']);
    expect(await typesOf(db, sql`SELECT jsonb_typeof(frame) AS t FROM outbox WHERE order_id = ${order.id}::uuid AND destination = 'exchange'`)).toEqual(['object']);
    cover('orders', 'content');
    cover('outbox', 'frame');
  });

  run('keeps both versions of a feed conflict as objects', async (db) => {
    const sim = await startExchangeSim({ idPrefix: `json${Math.random().toString(36).slice(2, 8)}` });
    const gateway = new FeedGateway({ db, url: sim.url, tz, heartbeatMs: 1000, backoffMinMs: 10, backoffMaxMs: 50, batchMs: 5 });
    try {
      await gateway.start();
      await until(() => gateway.connected, 'the gateway connected');
      const deal = { id: `json-conflict-${Date.now()}`, price: 41.25, quantity: 2, direction: 'buy' as const, delivery_day: '2023-02-06', delivery_hour: '08-09', trader_id: 'json_t', execution_time: '2023-02-06T06:13:45Z' };
      sim.sendDeal(deal);
      await until(() => gateway.counts.stored === 1, 'the first version stored');
      sim.sendDeal({ ...deal, price: 42.25 });
      // The count moves when the deal is judged; the conflict row is written right after.
      const [conflict] = await until(async () => {
        const rows = await db.query<{ differences: string[]; stored: Record<string, unknown>; received: Record<string, unknown> }>(sql`SELECT differences, stored, received FROM feed_conflicts WHERE deal_id = ${deal.id}`);
        return rows.length ? rows : undefined;
      }, 'the conflict recorded');
      expect(conflict).toMatchObject({ differences: ['price'], stored: { id: deal.id, price: '41.25' }, received: { id: deal.id, price: '42.25' } });
      expect(await typesOf(db, sql`SELECT jsonb_typeof(stored) AS t FROM feed_conflicts WHERE deal_id = ${deal.id}`)).toEqual(['object']);
      expect(await typesOf(db, sql`SELECT jsonb_typeof(received) AS t FROM feed_conflicts WHERE deal_id = ${deal.id}`)).toEqual(['object']);
      cover('feed_conflicts', 'stored');
      cover('feed_conflicts', 'received');
    } finally {
      await gateway.close();
      await sim.close();
    }
  });

  run('keeps an import conflict\'s fields and file row, and reconciles them field by field', async (db) => {
    const id = `json-rc-${Date.now()}`;
    const common = { id, trader_id: 'json_recon', delivery_day: '2023-03-02', delivery_hour: 10, execution_time: '2023-03-01T09:30:00Z' };
    await ingestTrades(db, [row({ ...common, price: 5000 })], 'feed', tz, new Date());
    const file = row({ ...common, price: 5100 });
    const begun = await beginImport(db, { file_name: 'epex_trades_20230301.csv', sha256: crypto.createHash('sha256').update(id).digest('hex'), size_bytes: 100, trading_day: '2023-03-01' }, new Date());
    const importId = begun.import.id;
    const outcomes = await ingestTrades(db, [file], 'file', tz, new Date());
    expect(outcomes).toEqual([{ id, status: 'conflict', differences: ['price'], storedTraderId: 'json_recon' }]);
    await recordImportBatch(db, { import_id: importId, first_line: 2, last_line: 2, received: 1, invalid: 0 }, [file], outcomes, tz);
    const [stored] = await db.query<{ differences: string[]; file_trade: Record<string, unknown> }>(sql`SELECT differences, file_trade FROM import_conflicts WHERE import_id = ${importId}`);
    expect(stored).toEqual({ differences: ['price'], file_trade: { ...trade(common), price: 5100, quantity: 12.3 } });
    expect(await typesOf(db, sql`SELECT jsonb_typeof(differences) AS t FROM import_conflicts WHERE import_id = ${importId}`)).toEqual(['array']);
    expect(await typesOf(db, sql`SELECT jsonb_typeof(file_trade) AS t FROM import_conflicts WHERE import_id = ${importId}`)).toEqual(['object']);
    await finishImport(db, importId, { status: 'done', rows: 1, rejected: 0 }, new Date());
    await reconcileImport(db, importId, tz, new Date());
    const [reconciliation] = await getReconciliations(db, { import_id: importId, limit: 10 });
    expect(reconciliation!.items.different).toEqual([{ trade_id: id, fields: [{ field: 'price', file: 5100, feed: 5000 }] }]);
    expect(await typesOf(db, sql`SELECT jsonb_typeof(fields) AS t FROM reconciliation_items WHERE import_id = ${importId} AND kind = 'different'`)).toEqual(['array']);
    cover('import_conflicts', 'differences');
    cover('import_conflicts', 'file_trade');
    cover('reconciliation_items', 'fields');
  });
});

describe('the JSON round trip', () => {
  it('decodes once the JSON strings that earlier versions stored on a server', async () => {
    const before = await fs.mkdtemp(path.join(os.tmpdir(), 'pd-migrations-'));
    for (const m of loadMigrations().filter((m) => m.version < 60)) await fs.copyFile(path.join(defaultMigrationsDir, m.file), path.join(before, m.file));
    const db = await openEmbedded(undefined);
    try {
      await migrate(db, { dir: before });
      const twice = (value: unknown) => JSON.stringify(JSON.stringify(value));
      await db.query(sql`INSERT INTO algorithm_runs (algorithm, version, params, input_from, input_to) VALUES ('old', '1', ${twice({ threshold: 0.5 })}::jsonb, '2018-06-13', '2018-06-27')`);
      await db.query(sql`INSERT INTO algorithm_runs (algorithm, version, params, input_from, input_to) VALUES ('new', '1', ${JSON.stringify({ threshold: 0.7 })}::jsonb, '2018-06-13', '2018-06-27')`);
      const result = await migrate(db);
      expect(result.applied).toContain('0060_json_values_not_strings.sql');
      expect(await db.query(sql`SELECT algorithm, params, jsonb_typeof(params) AS t FROM algorithm_runs ORDER BY algorithm`)).toEqual([
        { algorithm: 'new', params: { threshold: 0.7 }, t: 'object' },
        { algorithm: 'old', params: { threshold: 0.5 }, t: 'object' },
      ]);
    } finally {
      await db.close();
      await fs.rm(before, { recursive: true, force: true });
    }
  });

  it('covers every json and jsonb column of the schema', async () => {
    const key = (c: JsonColumn) => `${c.table}.${c.column} ${c.type}`;
    expect(covered.map(key).sort()).toEqual((await jsonColumns(reference)).map(key).sort());
  });
});
