// Several server processes on one database: a report read after a write's answer includes the
// write on every process, refreshes of pnl_hourly never overlap (TimescaleDB refuses that), every
// process pushes the corrected live row, and processes starting together all come up. Run on the
// embedded database with a view per process that holds NOTIFY deliveries back and refuses
// overlapping refreshes like TimescaleDB, and on a real TimescaleDB server with two connection
// pools when TEST_TIMESCALE_URL names one.
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Db } from '../server/db';
import { openEmbedded } from '../server/db/embedded';
import { migrate } from '../server/db/migrate';
import { openServer } from '../server/db/server';
import type { ClientToServerEvents, PnlUpdate, ServerToClientEvents } from '../server/live/events';
import { checkApiTrade, type TradeRow } from '../server/trades/normalize';
import { ingestTrades } from '../server/trades/store';
import { freshTimescaleDatabase } from './helpers/databases';
import { ProcessDb, RefreshWatch } from './helpers/process-db';
import { adminAuth, jsonOf, recordingLogger, startTestServer, trade, type LogEntry, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

const tz = 'Europe/Berlin';
type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

function row(overrides: Record<string, unknown>): TradeRow {
  const checked = checkApiTrade(trade(overrides), tz);
  if (!checked.ok) throw new Error(checked.message);
  return checked.value;
}

interface Setup { views: [ProcessDb, ProcessDb]; watch: RefreshWatch; seed: Db; close(): Promise<void> }

const setups: [string, () => Promise<Setup | undefined>][] = [
  ['on one embedded database (NOTIFY held back, overlapping refreshes refused)', async () => {
    const inner = await openEmbedded(undefined);
    const watch = new RefreshWatch(true);
    return { views: [new ProcessDb(inner, watch), new ProcessDb(inner, watch)], watch, seed: inner, close: () => inner.close() };
  }],
  ['on a TimescaleDB server (two connection pools)', async () => {
    const database = await freshTimescaleDatabase('procs', 'two server processes on a TimescaleDB server');
    if (!database) return undefined;
    const [a, b] = [await openServer(database.url), await openServer(database.url)];
    const watch = new RefreshWatch(false); // the server refuses by itself
    return { views: [new ProcessDb(a, watch), new ProcessDb(b, watch)], watch, seed: a, close: async () => { await a.close(); await b.close(); await database.drop(); } };
  }],
];

const failedRefreshes = (entries: LogEntry[]) => entries.filter((e) => e.level === 'error');

describe.each(setups)('two server processes %s', (_name, open) => {
  let setup: Setup | undefined;
  let a: TestServer;
  let b: TestServer;
  const logs: [LogEntry[], LogEntry[]] = [[], []];
  const clients: Client[] = [];

  beforeAll(async () => {
    setup = await open();
    if (!setup) return;
    a = await startTestServer({ db: setup.views[0], log: recordingLogger(logs[0]) });
    b = await startTestServer({ db: setup.views[1], log: recordingLogger(logs[1]) });
    // Past days with one trade each at 23:00, then materialised: later deals for them are late.
    await ingestTrades(setup.seed, ['2023-05-10', '2023-05-11', '2023-05-12'].map((day) => row({ id: `xp-seed-${day}`, trader_id: 'xp', delivery_day: day, delivery_hour: 23 })), 'api', tz, new Date());
    await a.deps.pnlFreshness!.materialiseHistory();
    expect(await a.deps.pnlFreshness!.watermark()).toBeGreaterThan(Date.parse('2023-05-12T21:00:00Z')); // every hour the tests use is below it
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await a?.close();
    await b?.close();
    await setup?.close();
  });
  const run = (title: string, fn: (s: Setup, ctx: { skip(): void }) => Promise<void>) => it(title, async (ctx) => {
    if (!setup) return ctx.skip();
    await fn(setup, ctx);
  }, 60_000);

  const trades = async (server: TestServer, day: string) => (await jsonOf(await server.request(`/v1/reports/pnl?trader_id=xp&delivery_day=${day}`))).total.trades as number;
  const post = (server: TestServer, id: string, day: string, hour: number) => server.request('/v1/trades', { method: 'POST', json: trade({ id, trader_id: 'xp', delivery_day: day, delivery_hour: hour }) });

  run('includes a late deal in a report read right after the answer, on the writing process and on the other, before either heard its NOTIFY', async ({ views }) => {
    for (const view of views) view.holdNotifications();
    try {
      const stale: string[] = [];
      for (let i = 0; i < 20; i++) {
        const [writer, other] = i % 2 ? [b, a] : [a, b];
        expect((await post(writer, `xp-ryw-${i}`, '2023-05-10', i)).status).toBe(200);
        for (const [name, server] of [['writer', writer], ['other', other]] as const) {
          const seen = await trades(server, '2023-05-10');
          if (seen !== i + 2) stale.push(`deal ${i}: the ${name} process showed ${seen} trades, not ${i + 2}`);
        }
      }
      expect(stale).toEqual([]);
    } finally {
      for (const view of views) view.releaseNotifications();
    }
    expect(failedRefreshes([...logs[0], ...logs[1]])).toEqual([]);
  });

  run('never overlaps refreshes when both processes take late deals at once, and both push the corrected row last', async ({ watch }) => {
    const last: [PnlUpdate | undefined, PnlUpdate | undefined] = [undefined, undefined];
    for (const [i, server] of [a, b].entries()) {
      const c: Client = connect(server.url, { extraHeaders: { authorization: adminAuth }, transports: ['websocket'] });
      clients.push(c);
      c.on('pnl', (update) => { last[i] = update; });
      expect(await c.timeout(5000).emitWithAck('subscribe', { trader_id: 'xp', delivery_day: '2023-05-11' })).toMatchObject({ ok: true });
    }
    const overlapsBefore = watch.overlapping;
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => post(i % 2 ? b : a, `xp-conc-${i}`, '2023-05-11', i % 23)));
    expect(answers.map((r) => r.status)).toEqual(answers.map(() => 200));
    expect(await trades(a, '2023-05-11')).toBe(31);
    expect(await trades(b, '2023-05-11')).toBe(31);
    // Every process's last push for the day carries all 31 trades (pushes may come in any number).
    await until(() => last.every((u) => u?.total.trades === 31), 'both processes pushing the corrected total');
    expect(watch.overlapping - overlapsBefore).toBe(0);
    expect(failedRefreshes([...logs[0], ...logs[1]])).toEqual([]);
  });

  // A refresher outside the processes' lock (a policy, an operator's CALL) is simulated by the
  // embedded views; a server's own refusal of it is not provoked here (it needs a refresh held open).
  run('waits out a refresh that runs outside the processes and tries again instead of failing', async ({ watch }, ctx) => {
    if (setup!.seed.kind !== 'embedded') return ctx.skip();
    const refused = a.deps.pnlFreshness!.stats.refused;
    const release = watch.outsideRefresh();
    let answered = false;
    const answer = post(a, 'xp-outside', '2023-05-12', 5).then((r) => { answered = true; return r; });
    await until(() => a.deps.pnlFreshness!.stats.refused > refused, 'a refused refresh');
    expect(answered).toBe(false);
    release();
    expect((await answer).status).toBe(200);
    expect(await trades(b, '2023-05-12')).toBe(2);
    expect(failedRefreshes([...logs[0], ...logs[1]])).toEqual([]);
  });
});

describe('server processes starting together', () => {
  it('all come up on one embedded database with history to materialise, refreshes refused when they overlap', async () => {
    const inner = await openEmbedded(undefined);
    const watch = new RefreshWatch(true);
    const servers: TestServer[] = [];
    try {
      await migrate(inner);
      // Two years of history: materialised in several windows, which two processes would overlap.
      const rows = Array.from({ length: 800 }, (_, i) => row({ id: `start-${i}`, trader_id: 'start', delivery_day: new Date(Date.UTC(2021, 0, 1) + i * 86_400_000).toISOString().slice(0, 10), delivery_hour: 10 }));
      await ingestTrades(inner, rows, 'api', tz, new Date());
      const logs: LogEntry[] = [];
      const started = await Promise.allSettled([0, 1, 2].map(() => startTestServer({ db: new ProcessDb(inner, watch), log: recordingLogger(logs) })));
      for (const s of started) if (s.status === 'fulfilled') servers.push(s.value);
      expect(started.map((s) => (s.status === 'rejected' ? String(s.reason) : 'up'))).toEqual(['up', 'up', 'up']);
      expect(watch.overlapping).toBe(0);
      const [count] = await inner.query<{ n: number }>(sql`SELECT sum(trades)::int AS n FROM pnl_hourly WHERE trader_id = 'start'`);
      expect(count!.n).toBe(800);
    } finally {
      for (const s of servers) await s.close();
      await inner.close();
    }
  }, 60_000);
});
