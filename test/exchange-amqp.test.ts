// The exchange session over RabbitMQ (the real broker on 127.0.0.1:5672): no deal lost when the
// broker connection drops, redelivery of what was not committed, resume on a gap, publisher
// confirms, a standby gateway taking over the single-active-consumer queue.
import { beforeEach, describe, expect, it } from 'vitest';
import type { ExchangeSim } from '../scripts/exchange-sim';
import { sql } from '../server/db';
import { amqpTopology } from '../server/exchange/amqp-transport';
import type { GatewayOptions } from '../server/feed/gateway';
import { amqpUrl, deleteTopology, queueDepth, uniquePrefix } from './helpers/amqp';
import { exchangeHarness, storedIds as storedIdsOf, withTransaction } from './helpers/exchange';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy';
import { until } from './helpers/wait';

const tz = 'Europe/Berlin';
const fast = { heartbeatMs: 1000, backoffMinMs: 20, backoffMaxMs: 200, batchMs: 5, resumeTimeoutMs: 500 } satisfies Partial<GatewayOptions>;

let prefix = '';
const h = exchangeHarness(fast, () => ({ transport: 'amqp', amqpUrl, amqpPrefix: prefix }));
const { sim, cleanup } = h;
beforeEach(() => {
  prefix = uniquePrefix('session');
  cleanup.push(() => deleteTopology(prefix));
});
const gateway = (url: string, options: Partial<GatewayOptions> = {}) => h.gateway(url, { amqpPrefix: prefix, ...options });

async function proxy(): Promise<TcpProxy> {
  const p = await startTcpProxy(Number(new URL(amqpUrl).port || 5672), new URL(amqpUrl).hostname);
  cleanup.push(() => p.close());
  return p;
}

const viaProxy = (p: TcpProxy) => { const u = new URL(amqpUrl); u.host = `127.0.0.1:${p.port}`; return u.toString(); };

const storedIds = (s: ExchangeSim) => storedIdsOf(h.server.deps.db, s.deals[0]!.id.split('-')[0]!);

async function allStored(s: ExchangeSim, timeoutMs = 20_000) {
  await until(async () => (await storedIds(s)).size === s.deals.length, `all ${s.deals.length} deals stored`, timeoutMs);
  const stored = await storedIds(s);
  expect([...stored.keys()].sort()).toEqual(s.deals.map((d) => d.id).sort());
  expect([...stored.values()].every((n) => n === 1)).toBe(true);
}

async function committed(): Promise<number> {
  const [row] = await h.server.deps.db.query<{ committed_seq: number }>(sql`SELECT committed_seq FROM exchange_sessions WHERE member = ${h.member}`);
  return row?.committed_seq ?? 0;
}

describe('exchange session over RabbitMQ', () => {
  it('stores every deal exactly once when the broker connection drops while deals flow and messages wait in the durable queue', async () => {
    const s = await sim();
    const p = await proxy();
    const g = await gateway(viaProxy(p));
    await until(() => g.connected, 'consuming');
    for (let i = 0; i < 200; i++) s.sendDeal({ trader_id: 'q_drop' });
    s.sendRecall(s.deals[3]!.id);
    await until(async () => (await committed()) > 0, 'a first commit');
    p.drop();
    for (let i = 0; i < 100; i++) s.sendDeal({ trader_id: 'q_drop' }); // queued by the broker meanwhile
    await until(() => g.connections >= 2 && g.connected, 'reconnected');
    for (let i = 0; i < 100; i++) s.sendDeal({ trader_id: 'q_drop' });
    await allStored(s);
    await until(async () => (await committed()) === 401, 'seq 401 committed');
    await g.drained();
    expect(g.counts).toMatchObject({ stored: 400, duplicates: 0, recalls: 1, dead_lettered: 0 });
    expect(s.resumes).toBe(0); // the queue itself redelivers: no replay was needed
    await until(async () => (await queueDepth(amqpTopology(prefix).fromExchange)) === 0, 'the queue drained');
  });

  it('redelivers what was not committed when the gateway stops before its database took the messages', async () => {
    const s = await sim();
    const db = h.server.deps.db;
    let failing = false;
    const flaky = withTransaction(db, (fn) => (failing ? Promise.reject(new Error('database down (injected)')) : db.transaction(fn)));
    const dead = await gateway(amqpUrl, { db: flaky, backoffMinMs: 5, backoffMaxMs: 10 });
    failing = true; // registered; from now on no batch can be stored
    await until(() => dead.connected, 'the broken gateway consuming');
    for (let i = 0; i < 50; i++) s.sendDeal({ trader_id: 'q_redeliver' });
    await until(() => dead.counts.received >= 50, 'all 50 delivered to the broken gateway');
    await dead.close(); // gives up on the database: nothing was acknowledged
    expect((await storedIds(s)).size).toBe(0);
    const g = await gateway(amqpUrl);
    await allStored(s);
    expect(g.counts.stored).toBe(50);
    expect(s.resumes).toBe(0);
  });

  it('asks the exchange for a resume over RabbitMQ and stores what it held back, however long the replay queues behind other messages, when seqs are skipped', async () => {
    const s = await sim({ gapEvery: 10 });
    // A short timeout: the replay waits behind thousands of queued messages far longer than this,
    // which must not count as the exchange failing to replay.
    const g = await gateway(amqpUrl, { resumeTimeoutMs: 100 });
    await until(() => g.connected, 'consuming');
    for (let i = 0; i < 10_000; i++) s.sendDeal({ trader_id: 'q_gap' });
    await allStored(s, 60_000);
    expect(await committed()).toBe(10_000);
    expect(s.resumes).toBeGreaterThanOrEqual(1);
    const gaps = await h.server.deps.db.query<{ filled_at: Date | null; lost_at: Date | null }>(sql`SELECT filled_at, lost_at FROM exchange_gaps WHERE member = ${h.member}`);
    expect(gaps.length).toBeGreaterThanOrEqual(1);
    expect(gaps.every((x) => x.filled_at instanceof Date && x.lost_at === null)).toBe(true);
  }, 90_000);

  it('resolves send once the broker confirmed the message and the exchange receives it', async () => {
    const s = await sim();
    const g = await gateway(amqpUrl);
    await until(() => g.connected, 'consuming');
    await g.send({ order_new: { client_order_id: 'amqp-1', side: 'sell' } });
    await until(() => s.fromClients.some((m) => JSON.stringify(m).includes('amqp-1')), 'the order at the exchange');
    await g.close();
    await expect(g.send({ order_new: { client_order_id: 'amqp-2' } })).rejects.toThrow(/not connected/);
  });

  it('hands the queue to the standby gateway when the active one stops', async () => {
    const s = await sim();
    const a = await gateway(amqpUrl);
    await until(() => a.connected, 'a consuming');
    const b = await gateway(amqpUrl);
    await until(() => b.connected, 'b standing by');
    for (let i = 0; i < 100; i++) s.sendDeal({ trader_id: 'q_standby' });
    await until(async () => (await committed()) === 100, 'the first 100 committed');
    expect(a.counts.received).toBe(100);
    expect(b.counts.received).toBe(0); // single active consumer: the standby gets nothing meanwhile
    await a.close();
    for (let i = 0; i < 100; i++) s.sendDeal({ trader_id: 'q_standby' });
    await allStored(s);
    expect(b.counts.stored).toBe(100);
  });
});
