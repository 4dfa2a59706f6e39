// Monitoring as deployed: Prometheus' config and alert rules pass promtool (check and unit tests),
// every metric they and the Grafana dashboard use is one the real server exports on /metrics,
// the health gauges behind two alerts report what the database says, and the dashboard's SQL
// runs as plain SELECTs under the read-only analyst role against the real schema.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeSim, type ExchangeSim } from '../scripts/exchange-sim';
import { sql } from '../server/db';
import type { SqlQuery } from '../server/db/sql';
import { expectedTradingDay } from '../server/importer/deadline';
import { io as connect } from 'socket.io-client';
import { startHealthGauges } from '../server/http/health-gauges';
import { MetricsRegistry } from '../server/http/metrics';
import { createLogger } from '../server/log';
import { localDay } from '../server/time/market-time';
import { adminAuth, startTestServer, trade, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

const run = promisify(execFile);
const promtool = process.env.PROMTOOL_PATH ?? '/usr/bin/promtool';
const haveProm = fs.existsSync(promtool);
if (!haveProm) {
  const message = `promtool is not installed at ${promtool} (apt-get install -y prometheus, or set PROMTOOL_PATH): the Prometheus config and rules cannot be checked`;
  if (process.env.CI) throw new Error(`${message}; CI is set, so this is a failure`);
  console.warn(`\n!!! SKIPPING: ${message}. !!!\n`);
}

const promDir = path.resolve('deploy/prometheus');
const rulesFile = path.join(promDir, 'rules/powerdesk.yml');
const dashboardFile = path.resolve('deploy/grafana/dashboards/powerdesk.json');
const datasourcesFile = path.resolve('deploy/grafana/provisioning/datasources/powerdesk.yml');

/**
 * Metrics the rules use that the server does not export yet (none today). Once the server
 * exports one, the test fails until it is removed from here.
 */
const expectedFromTrading: string[] = [];
/** Series Prometheus makes itself for every target. */
const fromPrometheus = ['up'];

const metricNames = (text: string) => new Set(text.match(/\b(?:powerdesk|nodejs|process)_[a-z0-9_]+/g) ?? []);

interface Panel { title: string; type: string; datasource?: { uid: string }; targets?: { expr?: string; rawSql?: string; format?: string; datasource?: { uid: string } }[] }
const dashboard = JSON.parse(fs.readFileSync(dashboardFile, 'utf8')) as { uid: string; panels: Panel[] };
const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t, uid: t.datasource?.uid ?? p.datasource?.uid })));

describe.skipIf(!haveProm)('Prometheus config and rules (promtool)', () => {
  it('passes promtool check config with the rules it loads', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-prom-'));
    try {
      // The compose secret and the rules path made local; each must be found exactly once.
      let config = fs.readFileSync(path.join(promDir, 'prometheus.yml'), 'utf8');
      for (const [from, to] of [['/run/secrets/metrics_token', path.join(dir, 'token')], ['rules/*.yml', path.join(promDir, 'rules/*.yml')]] as const) {
        expect(config.split(from).length - 1, `prometheus.yml names ${from} once`).toBe(1);
        config = config.replace(from, to);
      }
      fs.writeFileSync(path.join(dir, 'token'), 'token\n');
      fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
      const { stdout } = await run(promtool, ['check', 'config', path.join(dir, 'prometheus.yml')]);
      expect(stdout).toMatch(/SUCCESS: 8 rules found/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes promtool check rules and its unit tests of every alert', async () => {
    const checked = await run(promtool, ['check', 'rules', rulesFile]);
    expect(checked.stdout).toMatch(/SUCCESS: 8 rules found/);
    const tested = await run(promtool, ['test', 'rules', path.join(promDir, 'tests/powerdesk.test.yml')]);
    expect(tested.stdout).toMatch(/SUCCESS/);
    // Every alert of the rules file has a unit test.
    const alerts = [...fs.readFileSync(rulesFile, 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    const tests = fs.readFileSync(path.join(promDir, 'tests/powerdesk.test.yml'), 'utf8');
    expect(alerts).toHaveLength(8);
    for (const a of alerts) expect(tests, `a unit test of ${a}`).toContain(`alertname: ${a}`);
  });
});

describe('the metrics that the rules and the dashboard use, and the dashboard SQL', () => {
  let server: TestServer;
  let exchange: ExchangeSim;
  const tz = 'Europe/Berlin';
  const day = localDay(new Date(Date.now() + 86_400_000), tz);

  beforeAll(async () => {
    exchange = await startExchangeSim({ rate: 0 });
    // The gateway registers the feed metrics; METRICS_TOKEN is the bearer token /metrics may ask for.
    server = await startTestServer({ env: { EXCHANGE_WS_URL: exchange.url, METRICS_TOKEN: 'monitoring-test-token' } });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await exchange?.close();
  });

  const exported = async () => {
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer monitoring-test-token' } });
    expect(res.status).toBe(200);
    const text = await res.text();
    const names = new Set<string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
      names.add(m[1]!);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m[1]}${s}`);
    }
    return names;
  };

  it('exports every metric named in the alert rules and the dashboard, including the order outbox lag and rejects', async () => {
    const used = new Set([...metricNames(fs.readFileSync(rulesFile, 'utf8')), ...targets.flatMap((t) => [...metricNames(t.expr ?? '')])]);
    expect(used.size).toBeGreaterThan(10);
    // Metrics appear with their first use: a trade through the API, a live client, deals from the exchange.
    const client = connect(server.url, { extraHeaders: { authorization: adminAuth } });
    try {
      expect((await server.request('/v1/trades', { method: 'POST', json: trade({ id: 'metrics-1', delivery_day: day, execution_time: new Date().toISOString() }) })).status).toBe(200);
      exchange.generate();
      let missing: string[] = [];
      let names = new Set<string>();
      await until(async () => {
        names = await exported();
        missing = [...used].filter((n) => !names.has(n) && !expectedFromTrading.includes(n));
        return missing.length === 0;
      }, 'every metric the rules and the dashboard use on /metrics', 30_000).catch(() => {});
      expect(missing, 'metrics the rules or the dashboard use but /metrics does not export').toEqual([]);
      const nowExported = expectedFromTrading.filter((n) => names.has(n));
      expect(nowExported, 'exported now: remove them from expectedFromTrading').toEqual([]);
    } finally {
      client.close();
    }
    for (const n of expectedFromTrading) expect(used.has(n), `${n} is used by the rules`).toBe(true);
    // `up` is the only other series the rules use.
    const rulesText = fs.readFileSync(rulesFile, 'utf8');
    const exprs = [...rulesText.matchAll(/expr: (.+)/g)].map((m) => m[1]!).join(' ');
    for (const n of fromPrometheus) expect(exprs).toMatch(new RegExp(`\\b${n}\\{`));
  }, 60_000);

  it('reports the oldest open sequence gap and an overdue nightly file from the database', async () => {
    const now = new Date('2026-03-10T09:00:00Z');
    const metrics = new MetricsRegistry();
    const db = server.deps.db;
    await db.query(sql`INSERT INTO exchange_sessions (member, committed_seq, updated_at) VALUES ('ops-a', 10, ${now}), ('ops-b', 5, ${now}) ON CONFLICT (member) DO NOTHING`);
    await db.query(sql`INSERT INTO exchange_gaps (member, gateway_id, from_seq, to_seq, detected_at) VALUES
      ('ops-a', 'g', 11, 12, ${new Date(now.getTime() - 300_000)}), ('ops-a', 'g', 20, 21, ${new Date(now.getTime() - 60_000)})`);
    await db.query(sql`INSERT INTO exchange_gaps (member, gateway_id, from_seq, to_seq, detected_at, filled_at) VALUES ('ops-b', 'g', 6, 7, ${new Date(now.getTime() - 900_000)}, ${now})`);
    const value = async (name: string, labels = '') => {
      const m = new RegExp(`^${name}${labels.replace(/[{}]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(await metrics.render());
      return m ? Number(m[1]) : undefined;
    };
    let stop = startHealthGauges({ db, metrics, clock: { now: () => now }, log: createLogger('silent'), tz, importDeadline: '02:00', everyMs: 50 });
    try {
      await until(async () => (await value('powerdesk_exchange_gap_open_seconds', '{member="ops-a"}')) === 300, 'the oldest open gap of ops-a (300 s)');
      expect(await value('powerdesk_exchange_gap_open_seconds', '{member="ops-b"}')).toBe(0); // its gap is filled
      expect(await value('powerdesk_import_file_overdue')).toBe(1);
    } finally {
      await stop();
    }
    // The file of the trading day due at `now` imported: no longer overdue.
    const due = expectedTradingDay(now, tz, '02:00');
    await db.query(sql`INSERT INTO imports (file_name, sha256, size_bytes, trading_day, status, started_at) VALUES
      (${`epex_trades_${due.replaceAll('-', '')}.csv`}, ${'a'.repeat(64)}, 10, ${due}, 'done', ${now})`);
    const fresh = new MetricsRegistry();
    stop = startHealthGauges({ db, metrics: fresh, clock: { now: () => now }, log: createLogger('silent'), tz, importDeadline: '02:00', everyMs: 50 });
    try {
      await until(async () => { const text = await fresh.render(); return /^powerdesk_import_file_overdue 0$/m.test(text) && /member="ops-a"/.test(text); }, 'the overdue gauge to read 0 once the file is imported');
    } finally {
      await stop();
    }
  }, 60_000);

  it('reports how far the order outbox is behind and how many orders were rejected, from the database', async () => {
    const now = new Date('2026-03-10T09:00:00Z');
    const metrics = new MetricsRegistry();
    const db = server.deps.db;
    const order = async (id: string, status: string) => db.query(sql`
      INSERT INTO orders (id, client_order_id, trader_id, side, type, time_in_force, delivery_day, delivery_start, delivery_end, quantity, limit_price, status, held, held_mw, content, created_at, updated_at)
      VALUES (${id}::uuid, ${id}, 'ops_gauges', 'buy', 'limit', 'gtc', '2026-03-11', '2026-03-11T09:00:00Z', '2026-03-11T10:00:00Z', 1, 10, ${status}, 0, 0, '{}'::jsonb, ${now}, ${now})`);
    await db.query(sql`INSERT INTO accounts (trader_id, created_at, updated_at) VALUES ('ops_gauges', ${now}, ${now}) ON CONFLICT DO NOTHING`);
    await order('00000000-0000-4000-8000-00000000a001', 'rejected');
    await order('00000000-0000-4000-8000-00000000a002', 'rejected');
    await order('00000000-0000-4000-8000-00000000a003', 'pending_new');
    // Claimed by a dispatcher that has not sent them yet: the server's own dispatcher, which runs
    // here, leaves them alone until that claim runs out, so the lag stays what these rows say.
    const claimedUntil = new Date(Date.now() + 3_600_000);
    await db.query(sql`INSERT INTO outbox (destination, order_id, frame, created_at, claimed_until, claimed_by) VALUES
      ('exchange', '00000000-0000-4000-8000-00000000a003'::uuid, '{}'::jsonb, ${new Date(now.getTime() - 45_000)}, ${claimedUntil}, 'ops-gauges-test'),
      ('exchange', '00000000-0000-4000-8000-00000000a003'::uuid, '{}'::jsonb, ${new Date(now.getTime() - 5_000)}, ${claimedUntil}, 'ops-gauges-test')`);
    await db.query(sql`INSERT INTO outbox (destination, order_id, frame, created_at, sent_at) VALUES
      ('exchange', '00000000-0000-4000-8000-00000000a001'::uuid, '{}'::jsonb, ${new Date(now.getTime() - 600_000)}, ${now})`);
    const value = async (name: string) => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await metrics.render());
      return m ? Number(m[1]) : undefined;
    };
    const stop = startHealthGauges({ db, metrics, clock: { now: () => now }, log: createLogger('silent'), tz, importDeadline: '02:00', everyMs: 50 });
    try {
      // The oldest unsent message is 45 s old (the sent one, older still, does not count).
      await until(async () => (await value('powerdesk_orders_outbox_lag_seconds')) === 45, 'the outbox lag of the oldest unsent message (45 s)');
      const [rejected] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE status = 'rejected'`);
      expect(rejected!.n).toBeGreaterThanOrEqual(2);
      expect(await value('powerdesk_orders_rejected_total')).toBe(rejected!.n);
      // A third rejection is counted once, however many samples see it.
      await order('00000000-0000-4000-8000-00000000a004', 'rejected');
      await until(async () => (await value('powerdesk_orders_rejected_total')) === rejected!.n + 1, 'the counter to take the new rejection');
      await new Promise((r) => setTimeout(r, 200));
      expect(await value('powerdesk_orders_rejected_total')).toBe(rejected!.n + 1);
    } finally {
      await stop();
    }
  }, 60_000);

  it('provisions the dashboard on the data sources it names', () => {
    const sources = fs.readFileSync(datasourcesFile, 'utf8');
    const uids = [...sources.matchAll(/uid: (\S+)/g)].map((m) => m[1]);
    expect(uids).toEqual(['prometheus', 'timescaledb']);
    expect(sources).toMatch(/user: grafana\n/);
    expect(targets.length).toBeGreaterThan(10);
    for (const t of targets) {
      expect(uids, `${t.panel}: its data source`).toContain(t.uid);
      expect(Boolean(t.expr) !== Boolean(t.rawSql), `${t.panel}: a PromQL or an SQL query`).toBe(true);
      expect(t.uid === 'timescaledb', `${t.panel}: SQL on TimescaleDB, PromQL on Prometheus`).toBe(Boolean(t.rawSql));
    }
  });

  /** Grafana's time macros as parameters; any other macro or variable is refused. */
  function withTimeRange(text: string, from: Date, to: Date): SqlQuery {
    const strings: string[] = [''];
    const values: unknown[] = [];
    const add = (s: string) => { strings[strings.length - 1] += s; };
    const param = (v: unknown) => { values.push(v); strings.push(''); };
    for (const part of text.split(/(\$__timeFilter\(\s*[\w.]+\s*\)|\$__timeFrom\(\)|\$__timeTo\(\))/)) {
      const filter = /^\$__timeFilter\(\s*([\w.]+)\s*\)$/.exec(part);
      if (filter) { add(`${filter[1]} BETWEEN `); param(from); add('::timestamptz AND '); param(to); add('::timestamptz'); }
      else if (part === '$__timeFrom()') { param(from); add('::timestamptz'); }
      else if (part === '$__timeTo()') { param(to); add('::timestamptz'); }
      else {
        if (part.includes('$')) throw new Error(`unknown Grafana macro or variable in: ${part}`);
        add(part);
      }
    }
    return sql(Object.assign(strings, { raw: strings }) as unknown as TemplateStringsArray, ...values);
  }

  it('runs every dashboard SQL query as a plain SELECT under the read-only analyst role, PnL as the API reports it', async () => {
    const trader = 'ops_grafana';
    const deals = [
      trade({ id: 'g-1', trader_id: trader, delivery_day: day, delivery_hour: 8, price: 5000, quantity: 2, direction: 'buy', execution_time: new Date().toISOString() }),
      trade({ id: 'g-2', trader_id: trader, delivery_day: day, delivery_hour: 8, price: 6025, quantity: 1.5, direction: 'sell', execution_time: new Date().toISOString() }),
      trade({ id: 'g-3', trader_id: trader, delivery_day: day, delivery_hour: 17, price: 4010, quantity: 0.25, direction: 'sell', execution_time: new Date().toISOString() }),
    ];
    for (const d of deals) expect((await server.request('/v1/trades', { method: 'POST', json: d })).status).toBe(200);
    const report = (await (await server.request(`/v1/reports/pnl?trader_id=${trader}&delivery_day=${day}`)).json()) as { total: { pnl_eur: number; trades: number } };
    expect(report.total.trades).toBe(3);

    const from = new Date(Date.now() - 86_400_000);
    const to = new Date(Date.now() + 3 * 86_400_000);
    const sqlTargets = targets.filter((t) => t.rawSql);
    expect(sqlTargets.length).toBeGreaterThanOrEqual(4);
    const results = new Map<string, Record<string, unknown>[]>();
    for (const t of sqlTargets) {
      expect(t.rawSql!.trimStart(), `${t.panel}: a plain SELECT`).toMatch(/^SELECT\s/i);
      expect(t.rawSql, `${t.panel}: one statement`).not.toMatch(/;/);
      const rows = await server.deps.db.transaction(async (tx) => {
        await tx.query(sql`SET TRANSACTION READ ONLY`);
        await tx.query(sql`SET LOCAL ROLE analyst_ro`);
        return tx.query<Record<string, unknown>>(withTimeRange(t.rawSql!, from, to));
      });
      if (t.format === 'time_series') for (const r of rows) expect(r.time, `${t.panel}: a time column`).toBeInstanceOf(Date);
      results.set(t.panel, rows);
    }
    const perTrader = results.get('PnL per trader (deliveries in the time range)')!;
    const mine = perTrader.find((r) => r.trader === trader);
    expect(mine).toBeDefined();
    expect(Number(mine!.deals)).toBe(3);
    expect(Number(mine!.pnl_eur)).toBe(report.total.pnl_eur);
    const received = results.get('Deals received per minute by source')!;
    expect(received.filter((r) => r.metric === 'api').reduce((s, r) => s + Number(r.deals), 0)).toBeGreaterThanOrEqual(3);
  }, 60_000);
});
