// No deal lost across crashes, through the real server process: the simulator sends 20,000+
// deals (with recalls, repeats and gaps) while the server is killed with -9 and restarted at
// random points and the connection is cut; afterwards the stored ids equal the simulator's
// journal exactly, over the websocket and over RabbitMQ. The points are drawn from a fixed
// seed, and the outcome does not depend on where they fall or how fast the machine is.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startExchangeSim, type ExchangeSim } from '../scripts/exchange-sim';
import { openDb, sql } from '../server/db';
import type { FeedStatus } from '../server/live/events';
import { amqpUrl, deleteTopology, uniquePrefix } from './helpers/amqp';
import { startServerProcess, type ServerProcess } from './helpers/process';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy';
import { until } from './helpers/wait';
import { seededRandom as seeded } from '../scripts/sim/random';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => { while (cleanup.length) await cleanup.pop()!().catch(() => {}); });
afterAll(async () => { while (cleanup.length) await cleanup.pop()!().catch(() => {}); });


const deals = 20_000;
const ratePerSecond = 2500;
const kills = 6;
const drops = 4;

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'powerdesk-chaos-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Run {
  sim: ExchangeSim;
  env: Record<string, string>;
  drop: () => void;
}

async function chaos(run: Run, seed: number) {
  const random = seeded(seed);
  let server = await startServerProcess(run.env);
  cleanup.push(() => server.kill());
  // Where in the stream of deals the server is killed and where the connection is cut.
  const points = [
    ...Array.from({ length: kills }, () => ({ at: Math.floor(random() * deals * 0.9), what: 'kill' as const })),
    ...Array.from({ length: drops }, () => ({ at: Math.floor(random() * deals * 0.9), what: 'drop' as const })),
  ].sort((a, b) => a.at - b.at);
  let chaosDone: Promise<void> = Promise.resolve();
  const done = { kills: 0, drops: 0 };
  const started = Date.now();
  let sent = 0;
  while (sent < deals) {
    // Paced by the clock, whatever the server is doing: the exchange does not wait for us.
    const due = Math.min(deals, Math.floor(((Date.now() - started) / 1000) * ratePerSecond));
    for (; sent < due; sent = run.sim.deals.length) {
      run.sim.generate();
      while (points.length && points[0]!.at <= sent) {
        const point = points.shift()!;
        chaosDone = chaosDone.then(async () => {
          if (point.what === 'drop') { run.drop(); done.drops += 1; return; }
          await server.kill();
          done.kills += 1;
          await new Promise((r) => setTimeout(r, random() * 300)); // down a little while longer, at random
          server = await startServerProcess(run.env);
        });
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await chaosDone;
  expect(done).toEqual({ kills, drops });
  const lastSeq = run.sim.journal.at(-1)!.seq;
  const status = await until(async () => {
    const st = (await (await server.request('/v1/feed/status')).json()) as FeedStatus;
    return st.sessions.find((x) => x.committed_seq === lastSeq) ? st : undefined;
  }, `the journal's last seq ${lastSeq} committed`, 180_000);
  const listed = (await (await server.request('/v1/trades')).json()) as { id: string; recall?: unknown }[];
  const ids = listed.map((t) => t.id);
  const expected = run.sim.deals.map((d) => d.id);
  expect(ids.length).toBe(expected.length); // 0 doubled
  expect(new Set(ids).size).toBe(ids.length);
  expect([...ids].sort()).toEqual([...expected].sort()); // 0 lost
  const recalled = listed.filter((t) => t.recall).map((t) => t.id).sort();
  expect(recalled).toEqual([...run.sim.recalls.keys()].sort());
  expect(recalled.length).toBeGreaterThan(0);
  expect(status.counts.stored).toBe(expected.length);
  expect(status.sessions.flatMap((x) => x.gaps).filter((g) => g.lost_at !== null)).toEqual([]); // no gap given up
  await server.stop();
  return { seconds: (Date.now() - started) / 1000, lastSeq };
}

const simOptions = (seed: number) => ({
  idPrefix: `chaos${seed}`, random: seeded(seed), traders: ['chaos_1', 'chaos_2', 'chaos_3', 'chaos_4'],
  recallRate: 0.002, duplicates: 0.005, gapEvery: 2999, protocol: 2 as const,
});

const serverEnv = (dataDir: string, member: string): Record<string, string> => ({
  DATA_DIR: dataDir, EXCHANGE_MEMBER: member, FEED_GATEWAY_ID: 'chaos-gw', FEED_HEARTBEAT_MS: '1000',
  FEED_BACKOFF_MIN_MS: '50', FEED_BACKOFF_MAX_MS: '500',
});

describe('no deal lost across crashes (server process, kill -9)', () => {
  it(`stores exactly the journal's ${deals} deals over the websocket when the server is killed ${kills} times and the connection cut ${drops} times`, async () => {
    const dataDir = await tempDir();
    const sim = await startExchangeSim(simOptions(1201));
    cleanup.push(() => sim.close());
    const result = await chaos({ sim, env: { ...serverEnv(dataDir, 'chaos-ws'), EXCHANGE_WS_URL: sim.url }, drop: () => sim.dropConnections() }, 1201);
    console.log(`chaos over the websocket: ${deals} deals, ${result.lastSeq} messages, ${kills} kills, ${drops} drops in ${result.seconds.toFixed(1)} s`);
    // The same gateway id after every restart: one row, and no interval left open by the killed ones.
    const db = await openDb({ dataDir });
    try {
      expect(await db.query(sql`SELECT gateway_id FROM feed_gateways`)).toEqual([{ gateway_id: 'chaos-gw' }]);
      expect(await db.query(sql`SELECT id FROM feed_intervals WHERE ended_at IS NULL`)).toEqual([]);
    } finally {
      await db.close();
    }
  }, 400_000);

  it(`stores exactly the journal's ${deals} deals over RabbitMQ when the server is killed ${kills} times and the broker connection cut ${drops} times`, async () => {
    const dataDir = await tempDir();
    const prefix = uniquePrefix('chaos');
    cleanup.push(() => deleteTopology(prefix));
    const sim = await startExchangeSim({ ...simOptions(1202), transport: 'amqp', amqpUrl, amqpPrefix: prefix });
    cleanup.push(() => sim.close());
    const proxy: TcpProxy = await startTcpProxy(Number(new URL(amqpUrl).port || 5672), new URL(amqpUrl).hostname);
    cleanup.push(() => proxy.close());
    const viaProxy = new URL(amqpUrl);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    const result = await chaos({ sim, env: { ...serverEnv(dataDir, 'chaos-amqp'), EXCHANGE_AMQP_URL: viaProxy.toString(), EXCHANGE_AMQP_PREFIX: prefix }, drop: () => proxy.drop() }, 1202);
    console.log(`chaos over RabbitMQ: ${deals} deals, ${result.lastSeq} messages, ${kills} kills, ${drops} drops in ${result.seconds.toFixed(1)} s`);
  }, 400_000);
});

describe('feed status after a crash', () => {
  it('says disconnected at once and closes the killed gateway\'s interval when the server restarts after kill -9 and the exchange is gone', async () => {
    const dataDir = await tempDir();
    const sim = await startExchangeSim({ idPrefix: 'crash' });
    cleanup.push(() => sim.close());
    const env = { ...serverEnv(dataDir, 'crash'), EXCHANGE_WS_URL: sim.url };
    let server: ServerProcess = await startServerProcess(env);
    cleanup.push(() => server.kill());
    await until(async () => ((await (await server.request('/v1/feed/status')).json()) as FeedStatus).connected, 'connected');
    for (let i = 0; i < 10; i++) sim.sendDeal();
    await until(async () => ((await (await server.request('/v1/feed/status')).json()) as FeedStatus).counts.stored === 10, '10 stored');
    await server.kill();
    await sim.close(); // the exchange is unreachable now: the restarted gateway cannot connect
    server = await startServerProcess(env);
    const status = (await (await server.request('/v1/feed/status')).json()) as FeedStatus;
    expect(status.connected).toBe(false); // not "connected" for another 30 s on the killed gateway's word
    expect(status.disconnected_intervals.at(-1)?.to).toBeNull();
    expect(status.counts.stored).toBe(10); // the same gateway row, counting on
    await server.stop();
    const db = await openDb({ dataDir });
    try {
      expect(await db.query(sql`SELECT gateway_id FROM feed_gateways`)).toEqual([{ gateway_id: 'chaos-gw' }]);
      const open = await db.query(sql`SELECT id FROM feed_intervals WHERE ended_at IS NULL`);
      expect(open).toEqual([]);
      const connected = await db.query<{ ended_at: Date | null }>(sql`SELECT ended_at FROM feed_intervals WHERE state = 'connected'`);
      expect(connected.length).toBe(1);
      expect(connected[0]!.ended_at).toBeInstanceOf(Date); // closed at the killed gateway's last beat
    } finally {
      await db.close();
    }
  }, 120_000);
});
