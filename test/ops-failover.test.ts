// The load balancer for real: Debian's nginx running deploy/nginx/powerdesk.conf in front of two
// server processes on one TimescaleDB server. A Socket.IO client is subscribed through nginx while
// REST clients post trades through it; one server is killed (-9), later the other is stopped
// (SIGTERM, a rolling update). Every write is either acknowledged and stored or refused (a
// refused one is posted again with the same id, as a client does), the client is back on the
// surviving server within seconds, and its table equals the database's report (no missed deal).
//
// Two server processes need one database both reach. CI's PostgreSQL has no TimescaleDB (the
// server refuses it), and the embedded database admits one process: so it runs on an embedded
// database held by the test process and served to both server processes over their IPC channels
// (a killed process loses its transactions and locks, as with a database server), and on a
// TimescaleDB server when TEST_TIMESCALE_URL names one (skipped loudly otherwise).
import { io as connect, type Socket } from 'socket.io-client';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientToServerEvents, PnlHourRow, PnlReport, PnlTotal, ServerToClientEvents } from '../server/live/events';
import { sql } from '../server/db';
import { openEmbedded } from '../server/db/embedded';
import { localDay } from '../server/time/market-time';
import { freshTimescaleDatabase } from './helpers/databases';
import { haveNginx, startNginx, type Nginx } from './helpers/nginx';
import { startServerProcess, startServerProcessOn, type ServerProcess } from './helpers/process';
import { adminAuth, trade } from './helpers/server';
import { until } from './helpers/wait';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;
const tz = 'Europe/Berlin';
const trader = 'failover_trader';
// Tomorrow in market time: a day read live from trades, so every deal moves the table at once.
const day = localDay(new Date(Date.now() + 86_400_000), tz);
const nginxInstalled = haveNginx('the load balancer failover test');

interface Setup {
  startServer(env: Record<string, string>): Promise<ServerProcess>;
  storedIds(): Promise<Set<string>>;
  close(): Promise<void>;
}

const setups: [string, () => Promise<Setup | undefined>][] = [
  ['on one embedded database held by the test process', async () => {
    const inner = await openEmbedded(undefined);
    return {
      startServer: (env) => startServerProcessOn(inner, env, 120_000),
      storedIds: async () => new Set((await inner.query<{ id: string }>(sql`SELECT id FROM trades WHERE trader_id = ${trader}`)).map((r) => r.id)),
      close: () => inner.close(),
    };
  }],
  ['on a TimescaleDB server', async () => {
    const database = await freshTimescaleDatabase('failover', 'nginx in front of two server processes on a TimescaleDB server');
    if (!database) return undefined;
    const db = postgres(database.url, { max: 2, onnotice: () => {} });
    return {
      startServer: (env) => startServerProcess({ ...env, DATABASE_URL: database.url }, 120_000),
      storedIds: async () => new Set((await db<{ id: string }[]>`SELECT id FROM trades WHERE trader_id = ${trader}`).map((r) => r.id)),
      async close() { await db.end(); await database.drop(); },
    };
  }],
];

/** The client's table: the snapshot of its last subscribe ack, moved by `pnl` events since. */
class LiveTable {
  hours = new Map<string, PnlHourRow>();
  total?: PnlTotal;
  subscribed = 0;
  deals = new Set<string>();
  constructor(readonly socket: Client) {
    socket.on('connect', () => { if (!socket.recovered) void this.subscribe(); });
    // A server that stops disconnects its sockets itself, which Socket.IO does not retry: the
    // dashboard connects again, and so does this client.
    socket.on('disconnect', (reason) => { if (reason === 'io server disconnect') setTimeout(() => socket.connect(), 200); });
    socket.on('pnl', (update) => {
      if (update.trader_id !== trader || update.delivery_day !== day) return;
      this.hours.set(update.hour.label, update.hour);
      this.total = update.total;
    });
    socket.on('deal', (deal) => { this.deals.add(deal.id); });
  }

  private async subscribe(): Promise<void> {
    const ack = await this.socket.timeout(20_000).emitWithAck('subscribe', { trader_id: trader, delivery_day: day }).catch(() => undefined);
    if (!ack?.ok) return;
    const report = (ack as { report: PnlReport }).report;
    this.hours = new Map(report.hours.map((h) => [h.label, h]));
    this.total = report.total;
    this.subscribed += 1;
  }
}

interface Writes { acked: Set<string>; refused: Map<string, string>; posted: number }

/** REST clients posting trades through nginx until stop() is called. */
function writers(url: string, count: number, prefix: string) {
  const writes: Writes = { acked: new Set(), refused: new Map(), posted: 0 };
  let stopped = false;
  let n = 0;
  // The body of each id, so that a retry is the identical trade (a refused write may have been stored).
  const bodies = new Map<string, string>();
  const post = async (id: string, hour: number) => {
    if (!bodies.has(id)) bodies.set(id, JSON.stringify(trade({ id, trader_id: trader, delivery_day: day, delivery_hour: hour, price: 1000 + (hour * 37) % 500, quantity: 1.5, direction: hour % 3 ? 'buy' : 'sell', execution_time: new Date().toISOString() })));
    try {
      const res = await fetch(`${url}/v1/trades`, {
        method: 'POST', signal: AbortSignal.timeout(30_000),
        headers: { authorization: adminAuth, 'content-type': 'application/json' },
        body: bodies.get(id)!,
      });
      const text = await res.text();
      if (res.status === 200) { writes.acked.add(id); writes.refused.delete(id); return; }
      // 4xx would be the test's or the API's mistake, not a failover outcome.
      if (res.status < 500) throw new Error(`POST /v1/trades ${id}: ${res.status} ${text}`);
      writes.refused.set(id, `${res.status}`);
    } catch (error) {
      if ((error as Error).message.startsWith('POST')) throw error;
      writes.refused.set(id, (error as Error).message);
    }
  };
  const loops = Array.from({ length: count }, async () => {
    while (!stopped) {
      const i = n++;
      writes.posted += 1;
      await post(`${prefix}-${i}`, i % 24);
    }
  });
  return {
    writes,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      // A refused write is posted again with the same id: stored once whatever happened to the first.
      for (let round = 0; writes.refused.size > 0 && round < 20; round++) {
        for (const id of [...writes.refused.keys()]) await post(id, Number(id.split('-').pop()) % 24);
      }
    },
  };
}

const liveSockets = async (server: ServerProcess) => {
  const text = await (await server.request('/metrics')).text();
  const m = /^powerdesk_live_sockets(?:\{\})? (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
};

describe.skipIf(!nginxInstalled).each(setups)('nginx in front of two server processes %s', (_name, open) => {
  let setup: Setup | undefined;
  const servers: ServerProcess[] = [];
  let ports: [number, number];
  let nginx: Nginx;
  let socket: Client;
  let table: LiveTable;

  const env = { LOG_LEVEL: 'info', MARKET_TZ: tz };

  beforeAll(async () => {
    setup = await open();
    if (!setup) return;
    const first = await setup.startServer(env); // applies the migrations
    const second = await setup.startServer(env);
    servers.push(first, second);
    ports = [Number(new URL(first.url).port), Number(new URL(second.url).port)];
    nginx = await startNginx([`127.0.0.1:${ports[0]}`, `127.0.0.1:${ports[1]}`]);
    // Polling first, then the websocket upgrade: both through nginx, the polling part needs the sticky hash.
    socket = connect(nginx.url, { extraHeaders: { authorization: adminAuth }, reconnectionDelay: 100, reconnectionDelayMax: 1000 });
    table = new LiveTable(socket);
    await until(() => table.subscribed === 1 && socket.io.engine?.transport.name === 'websocket', 'the client subscribed through nginx over a websocket', 30_000);
  }, 300_000);

  afterAll(async () => {
    socket?.close();
    await nginx?.stop();
    for (const s of servers) await s.kill();
    await setup?.close();
  }, 120_000);

  /** The server process the client's socket is on (by each server's own /metrics). */
  const holder = async () => until(async () => {
    const counts = await Promise.all(servers.map((s) => (s.child.exitCode === null && s.child.signalCode === null ? liveSockets(s).catch(() => 0) : 0)));
    return counts.filter((c) => c > 0).length === 1 ? servers[counts.findIndex((c) => c > 0)] : undefined;
  }, 'exactly one server to hold the client socket', 30_000);

  /** The client's table equals the report the database gives, and holds every stored deal. */
  const tableMatchesDatabase = async () => {
    const stored = await setup!.storedIds();
    const report = await until(async () => {
      const res = await fetch(`${nginx.url}/v1/reports/pnl?trader_id=${trader}&delivery_day=${day}`, { headers: { authorization: adminAuth } });
      return res.ok ? ((await res.json()) as PnlReport) : undefined;
    }, 'the PnL report through nginx');
    expect(report.total.trades).toBe(stored.size);
    await until(() => table.total?.trades === stored.size, `the client table to count all ${stored.size} stored deals (has ${table.total?.trades})`, 30_000);
    const shown = (rows: Iterable<PnlHourRow>) => [...rows].map((h) => ({ label: h.label, trades: h.trades, pnl_eur: h.pnl_eur, buy_mw: h.buy_mw, sell_mw: h.sell_mw }));
    await until(() => JSON.stringify(shown(table.hours.values())) === JSON.stringify(shown(report.hours)), 'the client table to equal the database report hour by hour', 30_000);
    expect(table.total!.pnl_eur).toBe(report.total.pnl_eur);
  };

  const scenario = async (prefix: string, hurt: (victim: ServerProcess) => Promise<void>) => {
    const victim = await holder();
    const before = table.subscribed;
    const rest = writers(nginx.url, 4, prefix);
    await until(() => rest.writes.acked.size >= 20, 'writes acknowledged before the failure', 60_000);
    const hurtAt = Date.now();
    await hurt(victim);
    // Back on the other server, resubscribed with a fresh snapshot.
    await until(() => socket.connected && table.subscribed > before, 'the client to resubscribe on the other server', 20_000);
    const movedMs = Date.now() - hurtAt;
    const survivor = await holder();
    expect(survivor).not.toBe(victim);
    const ackedAtMove = rest.writes.acked.size;
    await until(() => rest.writes.acked.size >= ackedAtMove + 20, 'writes acknowledged after the failure', 60_000);
    await rest.stop();
    expect([...rest.writes.refused]).toEqual([]); // every refused write went through on its retry
    const stored = await setup!.storedIds();
    const mine = new Set([...stored].filter((id) => id.startsWith(`${prefix}-`)));
    for (const id of rest.writes.acked) expect(mine.has(id), `acknowledged trade ${id} is stored`).toBe(true);
    expect(mine.size).toBe(rest.writes.acked.size); // nothing stored that nobody posted
    await tableMatchesDatabase();
    return { movedMs, acked: rest.writes.acked.size, posted: rest.writes.posted };
  };

  it('kill -9 of the server holding the client: no write lost, the client moves and resynchronises', async ({ skip }) => {
    if (!setup) return skip();
    const result = await scenario('kill', async (victim) => { await victim.kill(); });
    expect(result.movedMs).toBeLessThan(20_000);
    console.info(`failover after kill -9: client resubscribed in ${result.movedMs} ms; ${result.acked} trades stored of ${result.posted} posts`);
  }, 300_000);

  it('a rolling update: the killed server comes back, the other is stopped with SIGTERM', async ({ skip }) => {
    if (!setup) return skip();
    const dead = servers.findIndex((s) => s.child.exitCode !== null || s.child.signalCode !== null);
    expect(dead).toBeGreaterThanOrEqual(0);
    servers[dead] = await setup.startServer({ ...env, PORT: String(ports[dead]) });
    await until(async () => (await servers[dead]!.request('/readyz')).ok, 'the restarted server to be ready', 60_000);
    const result = await scenario('drain', async (victim) => { await victim.stop(); });
    expect(result.movedMs).toBeLessThan(20_000);
    console.info(`rolling update: client resubscribed in ${result.movedMs} ms after SIGTERM; ${result.acked} trades stored of ${result.posted} posts`);
  }, 300_000);
});
