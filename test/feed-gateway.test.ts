import { describe, expect, it } from 'vitest';
import { startExchangeSim } from '../scripts/exchange-sim';
import { loadConfig } from '../server/config';
import { sql, type Db } from '../server/db';
import type { FeedGateway, GatewayOptions } from '../server/feed/gateway';
import { backoffDelay } from '../server/exchange/transport';
import type { FeedStatus } from '../server/live/events';
import { channels } from '../server/live/events';
import { addUser } from '../server/auth/users';
import { connected, exchangeHarness, storedIds as storedIdsOf, withTransaction } from './helpers/exchange';
import { basic, startTestServer } from './helpers/server';
import { until } from './helpers/wait';

const fast = { heartbeatMs: 100, backoffMinMs: 20, backoffMaxMs: 200, batchMs: 5 } satisfies Partial<GatewayOptions>;
const h = exchangeHarness(fast, () => ({ idPrefix: `t${Math.random().toString(36).slice(2, 8)}` }));
const { sim, gateway } = h;
const cleanup = h.cleanup;
const storedIds = (prefix: string) => storedIdsOf(h.server.deps.db, prefix);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (r: Promise<Response>): Promise<any> => (await r).json();

/** The real test database with its transactions routed through `transaction` (slow or failing). */
const withTx = (transaction: Db['transaction']) => withTransaction(h.server.deps.db, transaction);

const done = (g: FeedGateway) => g.counts.stored + g.counts.duplicates + g.counts.conflicts + g.counts.dead_lettered;

describe('exchange gateway', () => {
  it('stores a deal confirmation so that the REST API shows price 2050 for 20.5 EUR/MWh when the feed sends it', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    s.sendDeal({ id: 'feed-first-123', price: 20.5, quantity: 12.3, direction: 'buy', delivery_day: '2023-02-06', delivery_hour: '08-09', trader_id: 'feed_t1', execution_time: '2023-02-06T06:13:45Z' });
    s.sendDeal({ id: 'feed-first-124', price: -3.1, quantity: 0.1, direction: 'sell', delivery_day: '2023-02-06', delivery_hour: '09:15-09:30', trader_id: 'feed_t1', execution_time: '2023-02-06T07:00:00Z' }, 'trade_confirmation');
    s.sendDeal({ id: 'feed-first-125', price: 50, quantity: 5, direction: 'buy', delivery_day: '2023-10-29', delivery_hour: '02-03B', trader_id: 'feed_t1', execution_time: '2023-10-28T20:00:00Z' });
    await until(() => g.counts.stored === 3, 'three stored deals');
    const list = await json(h.server.request('/v1/trades?trader_id=feed_t1&delivery_day=2023-02-06'));
    expect(list).toEqual([
      { id: 'feed-first-123', price: 2050, quantity: 12.3, direction: 'buy', delivery_day: '2023-02-06', delivery_hour: 8, trader_id: 'feed_t1', execution_time: '2023-02-06T06:13:45Z' },
      { id: 'feed-first-124', price: -310, quantity: 0.1, direction: 'sell', delivery_day: '2023-02-06', delivery_hour: 9, delivery_period: '09:15-09:30', trader_id: 'feed_t1', execution_time: '2023-02-06T07:00:00Z' },
    ]);
    expect(await json(h.server.request('/v1/trades?trader_id=feed_t1&delivery_day=2023-10-29'))).toEqual([
      { id: 'feed-first-125', price: 5000, quantity: 5, direction: 'buy', delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02-03B', trader_id: 'feed_t1', execution_time: '2023-10-28T20:00:00Z' },
    ]);
    const rows = await h.server.deps.db.query<{ id: string; source: string; delivery_start: Date; delivery_end: Date }>(sql`SELECT id, source, delivery_start, delivery_end FROM trades WHERE trader_id = 'feed_t1' ORDER BY id`);
    expect(rows.map((r) => [r.id, r.source, r.delivery_start.toISOString(), r.delivery_end.toISOString()])).toEqual([
      ['feed-first-123', 'feed', '2023-02-06T07:00:00.000Z', '2023-02-06T08:00:00.000Z'],
      ['feed-first-124', 'feed', '2023-02-06T08:15:00.000Z', '2023-02-06T08:30:00.000Z'],
      ['feed-first-125', 'feed', '2023-10-29T01:00:00.000Z', '2023-10-29T02:00:00.000Z'], // the second 02:00 (UTC+1)
    ]);
  });

  it('stores every deal exactly once when the connection drops mid-stream and a version 1 exchange replays blindly on reconnect', async () => {
    const s = await sim({ replay: 1000, protocol: 1 });
    const g = await gateway(s.url);
    await connected(g);
    for (let i = 0; i < 150; i++) s.sendDeal({ trader_id: 'feed_drop' });
    s.dropConnections(); // some of these frames may be in flight when the socket dies
    for (let i = 0; i < 50; i++) s.sendDeal({ trader_id: 'feed_drop' }); // nobody connected: only the replay delivers them
    await connected(g, 2);
    for (let i = 0; i < 100; i++) s.sendDeal({ trader_id: 'feed_drop' });
    const sent = s.deals.map((d) => d.id);
    await until(async () => (await storedIds(sent[0]!.split('-')[0]!)).size === 300, 'all 300 deals stored');
    const stored = await storedIds(sent[0]!.split('-')[0]!);
    expect([...stored.keys()].sort()).toEqual([...sent].sort());
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    await g.drained();
    expect(g.counts.stored).toBe(300);
    expect(g.counts.duplicates).toBe(g.counts.received - 300); // the replayed ones that had arrived before
    const intervals = await h.server.deps.db.query<{ state: string; ended_at: Date | null }>(sql`SELECT state, ended_at FROM feed_intervals WHERE gateway_id = ${g.gatewayId} ORDER BY id`);
    // Alternating, every one closed but the last (a loaded machine may add a reconnect of its own).
    expect(intervals.length).toBeGreaterThanOrEqual(4);
    intervals.forEach((iv, i) => expect(iv.state).toBe(i % 2 === 0 ? 'disconnected' : 'connected'));
    expect(intervals.slice(0, -1).every((i) => i.ended_at !== null)).toBe(true);
    expect(intervals.at(-1)!.ended_at).toBeNull();
  });

  it('stores every deal exactly once when a version 1 exchange drops connections, repeats deals and sends garbage all the time', async () => {
    const s = await sim({ protocol: 1, rate: 400, duplicates: 0.05, malformed: 0.05, dropEvery: 250, burstEvery: 300, burstSize: 100, replay: 5000, synonym: 0.2, traders: ['feed_chaos'] });
    const g = await gateway(s.url);
    await until(() => s.deals.length >= 1200 && g.connections >= 3, 'traffic with several reconnects', 20_000);
    s.stop();
    const prefix = s.deals[0]!.id.split('-')[0]!;
    await until(async () => (await storedIds(prefix)).size === s.deals.length, 'every sent deal stored', 20_000);
    const stored = await storedIds(prefix);
    expect([...stored.keys()].sort()).toEqual(s.deals.map((d) => d.id).sort());
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    await g.drained();
    expect(g.counts.stored).toBe(s.deals.length);
    expect(g.counts.conflicts).toBe(0);
    expect(g.counts.dead_lettered).toBeGreaterThan(0);
  });

  it('terminates the connection and reconnects when the exchange stops answering pings', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    const down = new Promise<string>((resolve) => g.once('disconnected', resolve));
    s.answerPings(false);
    expect(await down).toMatch(/no pong/);
    s.answerPings(true);
    await connected(g, 2);
    s.sendDeal({ trader_id: 'feed_ping' });
    await until(() => g.counts.stored === 1, 'the deal after reconnecting');
    const [row] = await h.server.deps.db.query<{ reason: string }>(sql`SELECT reason FROM feed_intervals WHERE gateway_id = ${g.gatewayId} AND state = 'disconnected' AND reason LIKE 'no pong%'`);
    expect(row?.reason).toMatch(/no pong for 200 ms/);
  });

  it('counts a repeated deal as a duplicate and records a conflict with both versions when the content differs', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    const deal = s.sendDeal({ trader_id: 'feed_dup', price: 41.25, quantity: 7.5 });
    s.send({ deal_confirmation: deal });
    s.send({ deal_confirmation: { ...deal, price: 42.25 } });
    await until(() => done(g) === 3, 'three messages handled');
    await g.drained();
    // The resume sent on connecting may replay these frames once more: the replayed ones are ignored.
    expect(g.counts).toMatchObject({ stored: 1, duplicates: 1, conflicts: 1, dead_lettered: 0 });
    expect(g.counts.received - g.counts.ignored).toBe(3);
    const [conflict] = await h.server.deps.db.query<{ differences: string[]; stored: { price: string }; received: { price: string } }>(sql`SELECT differences, stored, received FROM feed_conflicts WHERE deal_id = ${deal.id}`);
    expect(conflict).toMatchObject({ differences: ['price'], stored: { price: '41.25' }, received: { price: '42.25' } });
    const [trade] = await json(h.server.request('/v1/trades?trader_id=feed_dup'));
    expect(trade.price).toBe(4125);
  });

  it('dead-letters broken frames with the field and reason and carries on when the exchange sends garbage', async () => {
    const s = await sim();
    const g = await gateway(s.url);
    await connected(g);
    const good = s.makeDeal({ trader_id: 'feed_dead', delivery_day: '2023-03-26', delivery_hour: '08-09' });
    const frames = [
      '{"deal_confirmation": {"id": "x"',
      JSON.stringify({ deal_confirmation: { ...good, id: 'dl-1', price: undefined } }),
      JSON.stringify({ deal_confirmation: { ...good, id: 'dl-2', quantity: -3 } }),
      JSON.stringify({ deal_confirmation: { ...good, id: 'dl-3', direction: 'hold' } }),
      JSON.stringify({ deal_confirmation: { ...good, id: 'dl-4', delivery_hour: '02-03' } }),
      JSON.stringify({ deal_confirmation: { ...good, id: 'dl-5', price: 20.505 } }),
      JSON.stringify({ order_ack: { id: 'dl-6' } }),
    ];
    for (const f of frames) s.send(f);
    s.send({ deal_confirmation: good });
    await until(() => done(g) === frames.length + 1, 'every frame handled');
    expect(g.counts).toMatchObject({ stored: 1, dead_lettered: frames.length });
    const res = await h.server.request(`/v1/feed/dead-letters?limit=${frames.length}`);
    expect(res.status).toBe(200);
    const letters = (await res.json()) as { raw: string; reason: string; received_at: string }[];
    expect(letters.map((l) => l.raw)).toEqual([...frames].reverse()); // latest first
    const reasons = letters.map((l) => l.reason).reverse();
    expect(reasons[0]).toMatch(/^message: not valid JSON/);
    expect(reasons[1]).toMatch(/^deal_confirmation\.price: /);
    expect(reasons[2]).toMatch(/^deal_confirmation\.quantity: must be greater than 0 MW \(got -3\)/);
    expect(reasons[3]).toMatch(/^deal_confirmation\.direction: must be "buy" or "sell" \(got "hold"\)/);
    expect(reasons[4]).toMatch(/^deal_confirmation\.delivery_hour: hour 02 does not exist on 2023-03-26/);
    expect(reasons[5]).toMatch(/^deal_confirmation\.price: must have at most 2 decimal places/);
    expect(reasons[6]).toMatch(/^message: expected the key "deal_confirmation"/);
    expect((await h.server.request('/v1/feed/dead-letters?limit=0')).status).toBe(400);
    await addUser(h.server.deps.db, { username: 'feed_trader', password: 'trader-password-1', role: 'trader', trader_id: 'feed_dead' });
    const asTrader = await h.server.request('/v1/feed/dead-letters', { auth: basic('feed_trader', 'trader-password-1') });
    expect(asTrader.status).toBe(403);
  });

  it('stores each deal once when two gateways are connected to the same version 1 exchange', async () => {
    const s = await sim({ replay: 1000, protocol: 1 }); // a gateway that reconnects gets what it missed
    const [a, b] = await Promise.all([gateway(s.url), gateway(s.url)]);
    await connected(a);
    await connected(b);
    await s.waitForClients(2);
    for (let i = 0; i < 400; i++) s.sendDeal({ trader_id: 'feed_two' });
    const prefix = s.deals[0]!.id.split('-')[0]!;
    await until(async () => (await storedIds(prefix)).size === 400 && done(a) >= 400 && done(b) >= 400, 'both gateways handled 400 deals');
    await Promise.all([a.drained(), b.drained()]);
    const stored = await storedIds(prefix);
    expect(stored.size).toBe(400);
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    expect(a.counts.stored + b.counts.stored).toBe(400);
    expect(a.counts.duplicates + b.counts.duplicates).toBe(a.counts.received + b.counts.received - 400);
    expect(a.counts.conflicts + b.counts.conflicts).toBe(0);
  });

  it('stores a burst in a few micro-batches and pauses reading when too much waits for the database', async () => {
    const s = await sim();
    const db = h.server.deps.db;
    const slow = withTx(async (fn) => { await new Promise((r) => setTimeout(r, 100)); return db.transaction(fn); }); // a slow database
    const g = await gateway(s.url, { db: slow, batchMax: 500, maxPending: 1000 });
    await connected(g);
    const batches: number[] = [];
    g.on('batch', (outcomes: unknown[]) => batches.push(outcomes.length));
    for (let i = 0; i < 3000; i++) s.sendDeal({ trader_id: 'feed_burst' });
    await until(() => g.counts.stored === 3000, '3000 deals stored');
    expect(batches.reduce((a, b) => a + b, 0)).toBe(3000);
    expect(Math.max(...batches)).toBeLessThanOrEqual(500);
    expect(batches.length).toBeLessThan(100); // micro-batched, not one transaction per deal
    expect(g.pauses).toBeGreaterThan(0);
    expect((await storedIds(s.deals[0]!.id.split('-')[0]!)).size).toBe(3000);
  });

  it('retries a batch until the database takes it when the database fails', async () => {
    const s = await sim();
    let failures = 0;
    const db = h.server.deps.db;
    const flaky = withTx((fn) => (failures-- > 0 ? Promise.reject(new Error('connection reset (injected)')) : db.transaction(fn)));
    const g = await gateway(s.url, { db: flaky, backoffMinMs: 5 });
    await connected(g);
    failures = 3;
    for (let i = 0; i < 20; i++) s.sendDeal({ trader_id: 'feed_dbfail' });
    await until(() => g.counts.stored === 20, '20 deals stored after the database recovered');
    expect(failures).toBeLessThan(0);
    expect((await storedIds(s.deals[0]!.id.split('-')[0]!)).size).toBe(20);
  });
});

describe('reconnecting', () => {
  it('doubles the delay up to the cap with jitter between half and all of it when attempts keep failing', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, 500, 10_000, () => 1))).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect([0, 1, 2, 6].map((a) => backoffDelay(a, 500, 10_000, () => 0))).toEqual([250, 500, 1000, 5000]);
    expect(backoffDelay(1000, 500, 10_000, () => 0.5)).toBe(7500); // huge attempt counts stay capped
  });

  it('connects when the exchange comes up after the gateway started', async () => {
    const first = await startExchangeSim();
    const port = first.port;
    await first.close(); // nothing listens on the port now
    const g = await gateway(`ws://127.0.0.1:${port}`);
    await until(async () => (await h.server.deps.db.query(sql`SELECT 1 FROM feed_intervals WHERE gateway_id = ${g.gatewayId}`)).length > 0, 'the starting interval');
    expect(g.connected).toBe(false);
    const s = await sim({ port });
    await connected(g);
    s.sendDeal({ trader_id: 'feed_late' });
    await until(() => g.counts.stored === 1, 'the first deal');
  });
});

describe('feed configuration', () => {
  it('refuses a config naming the variable when EXCHANGE_WS_URL or a feed setting is wrong', () => {
    expect(() => loadConfig({ EXCHANGE_WS_URL: 'http://exchange' })).toThrow(/EXCHANGE_WS_URL: must be a ws:\/\/ or wss:\/\/ URL/);
    expect(() => loadConfig({ MARKET_DATA_URL: 'ftp://x' })).toThrow(/MARKET_DATA_URL: must be an http/);
    expect(() => loadConfig({ FEED_HEARTBEAT_MS: 'soon' })).toThrow(/FEED_HEARTBEAT_MS: must be a number of milliseconds/);
    expect(() => loadConfig({ FEED_BACKOFF_MIN_MS: '5000', FEED_BACKOFF_MAX_MS: '100' })).toThrow(/FEED_BACKOFF_MAX_MS: must not be smaller/);
    expect(loadConfig({ EXCHANGE_WS_URL: 'wss://exchange.example/feed' }).EXCHANGE_WS_URL).toBe('wss://exchange.example/feed');
  });

  it('describes the feed and reference-price endpoints when the OpenAPI document is fetched', async () => {
    const doc = await json(h.server.request('/v1/openapi.json'));
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/feed/status', '/v1/feed/dead-letters', '/v1/reference-prices']));
    expect(JSON.stringify(doc.paths['/v1/feed/dead-letters'])).toContain('limit');
  });
});

describe('feed inside the server', () => {
  it('reports status, readiness and publishes feed_status when the gateway runs in the server and the exchange goes away', async () => {
    const s = await sim();
    const notified: FeedStatus[] = [];
    const unlisten = await h.server.deps.db.listen(channels.feedStatus, (p) => notified.push(JSON.parse(p)));
    cleanup.push(unlisten);
    const inner = await startTestServer({ db: h.server.deps.db, env: { EXCHANGE_WS_URL: s.url, FEED_HEARTBEAT_MS: '100', FEED_BACKOFF_MIN_MS: '5000', FEED_BACKOFF_MAX_MS: '5000', FEED_GATEWAY_ID: 'inner-gw' } });
    cleanup.push(() => inner.close());
    await s.waitForClients(1);
    await until(async () => (await inner.request('/readyz')).status === 200, 'readiness with the feed connected');
    s.sendDeal({ trader_id: 'feed_inner', price: 20.5 });
    await until(async () => (await json(inner.request('/v1/feed/status'))).last_message_at !== null && notified.some((n) => n.connected), 'status after a deal');
    const up: FeedStatus = await json(inner.request('/v1/feed/status'));
    const metrics = await (await inner.request('/metrics')).text();
    expect(metrics).toMatch(/powerdesk_feed_connected\{gateway="inner-gw"\} 1/);
    expect(metrics).toMatch(/powerdesk_feed_messages_total\{outcome="stored"\} [1-9]/);
    expect(up.connected).toBe(true);
    expect(up.counts.stored).toBeGreaterThanOrEqual(1);
    s.dropConnections(); // the next attempt is 2.5-5 s away: long enough to look at the outage
    const downStatus = await until(async () => { const st: FeedStatus = await json(inner.request('/v1/feed/status')); return st.connected ? undefined : st; }, 'status disconnected');
    expect(downStatus.disconnected_intervals.at(-1)).toEqual({ from: downStatus.since, to: null });
    expect((await inner.request('/readyz')).status).toBe(503);
    await until(() => notified.some((n) => !n.connected), 'a feed_status NOTIFY saying disconnected');
    // The status in another process comes from the database: the same answer from the outer h.server.
    const fromOuter: FeedStatus = await json(h.server.request('/v1/feed/status'));
    expect(fromOuter.connected).toBe(false);
    expect(fromOuter.disconnected_intervals.at(-1)).toEqual({ from: downStatus.since, to: null });
  });
});
