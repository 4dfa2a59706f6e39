// The live hub over real Socket.IO connections: authentication, subscriptions, deal and pnl
// pushes after a REST trade, a second server on the same database, recovery and resync.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connect, type Socket } from 'socket.io-client';
import { addUser } from '../server/auth/users';
import type { ClientToServerEvents, FeedStatus, PnlUpdate, ServerToClientEvents, SubscribeAck } from '../server/live/events';
import { channels } from '../server/live/events';
import type { ApiTrade } from '../server/trades/normalize';
import { adminAuth, basic, startTestServer, trade, type TestServer } from './helpers/server';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

let a: TestServer;
let b: TestServer;
const clients: Client[] = [];
const tina = basic('tina', 'tina-password');

beforeAll(async () => {
  a = await startTestServer();
  b = await startTestServer({ db: a.deps.db }); // a second server process on the same database
  await addUser(a.deps.db, { username: 'tina', password: 'tina-password', role: 'trader', trader_id: 'live_t' });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await b?.close();
  await a?.close();
});

function client(server: TestServer, headers: Record<string, string> = { Authorization: adminAuth }, options: Record<string, unknown> = {}): Client {
  const c: Client = connect(server.url, { extraHeaders: headers, transports: ['websocket'], reconnectionDelay: 50, reconnectionDelayMax: 200, ...options });
  clients.push(c);
  return c;
}

function connected(c: Client): Promise<void> {
  return new Promise((resolve, reject) => {
    if (c.connected) return resolve();
    c.once('connect', () => resolve());
    c.once('connect_error', (error) => reject(error));
  });
}

/** The next event matching `accept`, or a rejection after `ms`. */
function next<E extends 'deal' | 'pnl' | 'feed'>(c: Client, event: E, accept: (payload: Parameters<ServerToClientEvents[E]>[0]) => boolean, ms = 5000) {
  return new Promise<Parameters<ServerToClientEvents[E]>[0]>((resolve, reject) => {
    const timer = setTimeout(() => { c.off(event, handler as never); reject(new Error(`no ${event} within ${ms} ms`)); }, ms);
    const handler = (payload: Parameters<ServerToClientEvents[E]>[0]) => {
      if (!accept(payload)) return;
      clearTimeout(timer);
      c.off(event, handler as never);
      resolve(payload);
    };
    c.on(event, handler as never);
  });
}

function subscribe(c: Client, subscription: unknown): Promise<SubscribeAck> {
  return c.timeout(5000).emitWithAck('subscribe', subscription as never);
}

async function postTrade(server: TestServer, overrides: Record<string, unknown>) {
  const res = await server.request('/v1/trades', { method: 'POST', json: trade(overrides) });
  expect(res.status).toBe(200);
}

function until(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error('condition not met in time'));
      setTimeout(check, 10);
    };
    check();
  });
}

describe('live hub handshake', () => {
  it('refuses a connection without credentials', async () => {
    const c = client(a, {}, { reconnection: false });
    await expect(connected(c)).rejects.toThrow(/authentication required/);
  });

  it('refuses a connection with a wrong password', async () => {
    const c = client(a, { Authorization: basic('tina', 'wrong-password') }, { reconnection: false });
    await expect(connected(c)).rejects.toThrow(/wrong username or password/);
  });

  it('accepts the browser session cookie', async () => {
    const res = await a.request('/v1/session', { method: 'POST', json: { username: 'tina', password: 'tina-password' }, auth: null });
    expect(res.status).toBe(200);
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    const c = client(a, { Cookie: cookie });
    await connected(c);
    expect((await subscribe(c, { trader_id: 'live_t', delivery_day: '2023-05-10' })).ok).toBe(true);
  });
});

describe('subscribe', () => {
  it('acks with the current report when the subscription is valid', async () => {
    await postTrade(a, { id: 'snap1', trader_id: 'live_snap', delivery_day: '2023-05-10', delivery_hour: 9, direction: 'sell', price: 5000, quantity: 2 });
    const c = client(a);
    await connected(c);
    const ack = await subscribe(c, { trader_id: 'live_snap', delivery_day: '2023-05-10' });
    if (!ack.ok) throw new Error(ack.error);
    expect(ack.report.hours).toHaveLength(24);
    expect(ack.report.hours[9]).toMatchObject({ label: '09-10', trades: 1, sell_mw: 2, pnl_eur: 100 });
    expect(ack.report.total).toMatchObject({ trades: 1, pnl_eur: 100 });
  });

  it('acks an error naming the field when the subscription is invalid', async () => {
    const c = client(a);
    await connected(c);
    expect(await subscribe(c, { trader_id: 'live_t', delivery_day: '2023-02-30' })).toEqual({ ok: false, error: expect.stringMatching(/^delivery_day: must be a calendar date/) });
    expect(await subscribe(c, { trader_id: 'live_t' })).toEqual({ ok: false, error: 'delivery_day: is required' });
  });

  it("refuses a trader another trader's id and accepts her own", async () => {
    const c = client(a, { Authorization: tina });
    await connected(c);
    expect(await subscribe(c, { trader_id: 'someone_else', delivery_day: '2023-05-10' })).toEqual({ ok: false, error: 'trader_id: you may only subscribe to your own trader_id (live_t)' });
    expect((await subscribe(c, { trader_id: 'live_t', delivery_day: '2023-05-10' })).ok).toBe(true);
  });
});

describe('live pushes', () => {
  it('pushes deal and the updated pnl row within a second of a trade stored through REST', async () => {
    const c = client(a, { Authorization: tina });
    await connected(c);
    expect((await subscribe(c, { trader_id: 'live_t', delivery_day: '2023-05-11' })).ok).toBe(true);
    const first = next(c, 'pnl', (u) => u.hour.label === '14-15');
    await postTrade(a, { id: 'push0', trader_id: 'live_t', delivery_day: '2023-05-11', delivery_hour: 14, direction: 'buy', price: 4000, quantity: 3 });
    await first;
    const deal = next(c, 'deal', (t) => t.id === 'push1', 1000);
    const pnl = next(c, 'pnl', (u) => u.hour.label === '14-15' && u.hour.trades === 2, 1000);
    await postTrade(a, { id: 'push1', trader_id: 'live_t', delivery_day: '2023-05-11', delivery_hour: 14, direction: 'sell', price: 4550, quantity: 1 });
    expect(await deal).toEqual(trade({ id: 'push1', trader_id: 'live_t', delivery_day: '2023-05-11', delivery_hour: 14, direction: 'sell', price: 4550, quantity: 1 }));
    const update: PnlUpdate = await pnl;
    // sell 1 x 45.50 - buy 3 x 40.00 = -74.50
    expect(update).toMatchObject({ trader_id: 'live_t', delivery_day: '2023-05-11', hour: { delivery_start: '2023-05-11T12:00:00.000Z', buy_mw: 3, sell_mw: 1, pnl_eur: -74.5, net_mw: 2 }, total: { trades: 2, pnl_eur: -74.5 } });
  });

  it('does push a quarter-hour deal with its delivery_period and the hour row with its products', async () => {
    const c = client(a);
    await connected(c);
    expect((await subscribe(c, { trader_id: 'live_q', delivery_day: '2023-10-29' })).ok).toBe(true);
    const deal = next(c, 'deal', (t) => t.id === 'q-push');
    const pnl = next(c, 'pnl', (u) => u.hour.delivery_start === '2023-10-29T01:00:00.000Z');
    await postTrade(a, { id: 'q-push', trader_id: 'live_q', delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02:30-02:45B', direction: 'sell', price: 4000, quantity: 2 });
    expect(await deal).toEqual(trade({ id: 'q-push', trader_id: 'live_q', delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02:30-02:45B', direction: 'sell', price: 4000, quantity: 2 }));
    // 2 MW x 0.25 h x 40.00 = 20 EUR, in the second 02:00 hour
    expect((await pnl).hour).toMatchObject({ label: '02-03 (+01:00)', trades: 1, pnl_eur: 20, products: [{ period: '02:30-02:45B', trades: 1, sell_mw: 2, pnl_eur: 20 }] });
  });

  it('does not push deals of a trader and day the client did not subscribe to', async () => {
    const c = client(a);
    await connected(c);
    expect((await subscribe(c, { trader_id: 'live_x', delivery_day: '2023-05-12' })).ok).toBe(true);
    const seen: ApiTrade[] = [];
    c.on('deal', (t) => seen.push(t));
    await postTrade(a, { id: 'other-day', trader_id: 'live_x', delivery_day: '2023-05-13' });
    const mine = next(c, 'deal', (t) => t.id === 'mine');
    await postTrade(a, { id: 'mine', trader_id: 'live_x', delivery_day: '2023-05-12' });
    await mine;
    expect(seen.map((t) => t.id)).toEqual(['mine']);
  });

  it('pushes the pnl rows of a bulk upload without a tape line per deal', async () => {
    const c = client(a);
    await connected(c);
    expect((await subscribe(c, { trader_id: 'live_bulk', delivery_day: '2023-05-15' })).ok).toBe(true);
    const deals: ApiTrade[] = [];
    c.on('deal', (t) => deals.push(t));
    // 1,200 trades in one commit: above the detail limit, announced as the hours they touched.
    const batch = Array.from({ length: 1200 }, (_, i) => trade({ id: `bulk-${i}`, trader_id: 'live_bulk', delivery_day: '2023-05-15', delivery_hour: i % 2 ? 9 : 10, quantity: 1, price: i % 2 ? 5000 : 4000, direction: i % 2 ? 'sell' : 'buy' }));
    const nine = next(c, 'pnl', (u) => u.hour.label === '09-10' && u.total.trades === 1200);
    const ten = next(c, 'pnl', (u) => u.hour.label === '10-11' && u.total.trades === 1200);
    const res = await a.request('/v1/trades/batch', { method: 'POST', json: batch });
    expect(res.status).toBe(200);
    // 600 sells at 50.00 in hour 9, 600 buys at 40.00 in hour 10.
    expect((await nine).hour).toMatchObject({ trades: 600, sell_mw: 600, pnl_eur: 30000 });
    expect((await ten).hour).toMatchObject({ trades: 600, buy_mw: 600, pnl_eur: -24000 });
    expect(deals).toEqual([]);
  });

  it('pushes from a second server on the same database through NOTIFY/LISTEN', async () => {
    const c = client(b);
    await connected(c);
    expect((await subscribe(c, { trader_id: 'live_b', delivery_day: '2023-05-14' })).ok).toBe(true);
    const deal = next(c, 'deal', (t) => t.id === 'via-a');
    const pnl = next(c, 'pnl', (u) => u.hour.label === '08-09');
    await postTrade(a, { id: 'via-a', trader_id: 'live_b', delivery_day: '2023-05-14', delivery_hour: 8, direction: 'sell', price: 1000, quantity: 5 });
    expect((await deal).id).toBe('via-a');
    expect((await pnl).hour).toMatchObject({ trades: 1, sell_mw: 5, pnl_eur: 50 });
  });

  it('pushes the refreshed row when a late deal lands in an already materialised hour', async () => {
    await postTrade(a, { id: 'mat1', trader_id: 'live_m', delivery_day: '2023-05-17', delivery_hour: 6, direction: 'sell', price: 3000, quantity: 2 });
    await a.deps.pnlFreshness!.materialiseHistory();
    expect(await a.deps.pnlFreshness!.watermark()).toBeGreaterThan(Date.parse('2023-05-17T04:00:00Z')); // the 06-07 bucket is below it
    const c = client(a);
    await connected(c);
    const ack = await subscribe(c, { trader_id: 'live_m', delivery_day: '2023-05-17' });
    if (!ack.ok) throw new Error(ack.error);
    expect(ack.report.hours[6]).toMatchObject({ trades: 1, pnl_eur: 60 });
    const pnl = next(c, 'pnl', (u) => u.hour.label === '06-07');
    await postTrade(a, { id: 'mat2', trader_id: 'live_m', delivery_day: '2023-05-17', delivery_hour: 6, direction: 'buy', price: 1000, quantity: 1 });
    // 2 x 30 - 1 x 10 = 50: only right if the touched hour was refreshed before the row was read
    expect((await pnl).hour).toMatchObject({ trades: 2, buy_mw: 1, sell_mw: 2, pnl_eur: 50 });
  });

  it('stops pushing a trader and day after unsubscribe', async () => {
    const c = client(a);
    await connected(c);
    const subscription = { trader_id: 'live_u', delivery_day: '2023-05-18' };
    expect((await subscribe(c, subscription)).ok).toBe(true);
    expect(await c.timeout(5000).emitWithAck('unsubscribe', subscription)).toEqual({ ok: true });
    expect((await subscribe(c, { trader_id: 'live_u', delivery_day: '2023-05-19' })).ok).toBe(true);
    const seen: string[] = [];
    c.on('deal', (t) => seen.push(t.id));
    const marker = next(c, 'deal', (t) => t.id === 'u-after');
    await postTrade(a, { id: 'u-before', trader_id: 'live_u', delivery_day: '2023-05-18' });
    await postTrade(a, { id: 'u-after', trader_id: 'live_u', delivery_day: '2023-05-19' });
    await marker;
    expect(seen).toEqual(['u-after']);
  });

  it('pushes feed status to every authenticated socket', async () => {
    const c = client(b, { Authorization: tina });
    await connected(c);
    const status: FeedStatus = { connected: false, since: '2023-05-14T10:00:00Z', last_message_at: null, counts: { received: 1, stored: 1, duplicates: 0, conflicts: 0, dead_lettered: 0, recalls: 0, ignored: 0 }, disconnected_intervals: [{ from: '2023-05-14T10:00:00Z', to: null }], sessions: [] };
    const feed = next(c, 'feed', (s) => s.since === status.since);
    await a.deps.db.notify(channels.feedStatus, JSON.stringify(status));
    expect(await feed).toEqual(status);
  });
});

describe('reconnecting', () => {
  it('replays what a client missed when its connection state is recovered', async () => {
    const c = client(a, { Authorization: adminAuth }, { reconnection: false });
    await connected(c);
    expect((await subscribe(c, { trader_id: 'live_r', delivery_day: '2023-05-15' })).ok).toBe(true);
    const id = c.id!;
    c.io.engine.close(); // the transport drops, as on a network loss
    await until(() => !a.hub.io.sockets.sockets.has(id));
    await postTrade(a, { id: 'missed', trader_id: 'live_r', delivery_day: '2023-05-15', delivery_hour: 3, direction: 'buy', price: 100, quantity: 1 });
    const deal = next(c, 'deal', (t) => t.id === 'missed');
    const pnl = next(c, 'pnl', (u) => u.hour.label === '03-04');
    c.connect();
    await connected(c);
    expect(c.recovered).toBe(true);
    expect((await deal).id).toBe('missed');
    expect((await pnl).hour).toMatchObject({ trades: 1, pnl_eur: -1 });
  });

  it('gives a fresh snapshot when the connection state cannot be recovered', async () => {
    const c = client(a, { Authorization: adminAuth }, { reconnection: false });
    await connected(c);
    expect((await subscribe(c, { trader_id: 'live_s', delivery_day: '2023-05-16' })).ok).toBe(true);
    const disconnected = new Promise((resolve) => c.once('disconnect', resolve));
    a.hub.io.sockets.sockets.get(c.id!)!.disconnect(true); // the server forgets the session
    await disconnected;
    await postTrade(a, { id: 'while-away', trader_id: 'live_s', delivery_day: '2023-05-16', delivery_hour: 22, direction: 'sell', price: 2000, quantity: 4 });
    c.connect();
    await connected(c);
    expect(c.recovered).toBe(false);
    const ack = await subscribe(c, { trader_id: 'live_s', delivery_day: '2023-05-16' });
    if (!ack.ok) throw new Error(ack.error);
    expect(ack.report.hours[22]).toMatchObject({ trades: 1, sell_mw: 4, pnl_eur: 80 });
  });
});
