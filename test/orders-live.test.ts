// Live trading events over the real Socket.IO: `order`, `balance` and `notification` reach the
// trader's own sockets and the desk's, never another trader's.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { io as connect, type Socket } from 'socket.io-client';
import { addUser } from '../server/auth/users';
import type { ApiBalance, ApiNotification, ApiOrder } from '../server/live/events';
import { startFakeExchange, type FakeExchange } from './helpers/fake-exchange-orders';
import { basic, jsonOf, startTestServer, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

let server: TestServer;
let exchange: FakeExchange;
const sockets: Socket[] = [];

beforeAll(async () => {
  exchange = await startFakeExchange();
  server = await startTestServer({ clock: { now: () => new Date('2026-12-01T12:00:00Z') }, env: { EXCHANGE_WS_URL: exchange.url, FEED_BACKOFF_MIN_MS: '20', FEED_BACKOFF_MAX_MS: '200', FEED_BATCH_MS: '2' } });
  await addUser(server.deps.db, { username: 'lina', password: 'lina-password-1', role: 'trader', trader_id: 'lina_t' });
  await addUser(server.deps.db, { username: 'otto', password: 'otto-password-1', role: 'trader', trader_id: 'otto_t' });
  await addUser(server.deps.db, { username: 'desk', password: 'desk-password-1', role: 'analyst' });
  await until(() => server.gateway?.connected, 'gateway connected');
}, 60_000);
afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await server?.close();
  await exchange?.close();
});

function listen(username: string, password: string) {
  const socket = connect(server.url, { extraHeaders: { authorization: basic(username, password) }, transports: ['websocket'] });
  sockets.push(socket);
  const got = { order: [] as ApiOrder[], balance: [] as ApiBalance[], notification: [] as ApiNotification[] };
  socket.on('order', (o: ApiOrder) => got.order.push(o));
  socket.on('balance', (b: ApiBalance) => got.balance.push(b));
  socket.on('notification', (n: ApiNotification) => got.notification.push(n));
  return { socket, got };
}

it('pushes the order on every change, the balance and the notifications to the trader and the desk only', async () => {
  const lina = listen('lina', 'lina-password-1');
  const otto = listen('otto', 'otto-password-1');
  const desk = listen('desk', 'desk-password-1');
  await until(() => lina.socket.connected && otto.socket.connected && desk.socket.connected, 'sockets connected');
  expect((await server.request('/v1/accounts/lina_t/cash', { method: 'POST', json: { amount: '1000.00' } })).status).toBe(200);
  await until(() => lina.got.balance.some((b) => b.available === '1000.00'), 'balance after the deposit');
  const res = await server.request('/v1/orders', { method: 'POST', auth: basic('lina', 'lina-password-1'), json: { side: 'buy', type: 'limit', delivery_day: '2026-12-02', delivery_hour: 8, quantity: 4, limit_price: 5000 } });
  expect(res.status).toBe(201);
  const placed = await jsonOf(res);
  await until(() => lina.got.order.some((o) => o.id === placed.id && o.status === 'new'), 'order acknowledged, live');
  exchange.fill(placed.id, 1, 49);
  await until(() => lina.got.order.some((o) => o.id === placed.id && o.status === 'partially_filled' && o.fills.length === 1), 'partial fill, live');
  await until(() => lina.got.balance.some((b) => b.total === '951.00'), 'balance after the fill');
  const after = lina.got.balance[lina.got.balance.length - 1]!;
  expect(after).toMatchObject({ trader_id: 'lina_t', available: '801.00', held: '150.00', total: '951.00', currency: 'EUR' });
  const kinds = lina.got.notification.map((n) => n.kind);
  expect(kinds).toEqual(expect.arrayContaining(['deposit', 'placed', 'partially_filled']));
  const fillNote = lina.got.notification.find((n) => n.kind === 'partially_filled')!;
  expect(fillNote).toMatchObject({ order_id: placed.id, text: 'Buy 4 MW 2026-12-02 08-09 at 50.00 EUR/MWh: 1 MW filled at 49.00 EUR/MWh (1 of 4 MW)' });
  expect(typeof fillNote.id).toBe('number');
  // the desk sees it too, the other trader nothing
  await until(() => desk.got.order.some((o) => o.id === placed.id && o.status === 'partially_filled'), 'desk got the order');
  expect(desk.got.notification.map((n) => n.kind)).toEqual(expect.arrayContaining(['placed', 'partially_filled']));
  expect(otto.got.order).toEqual([]);
  expect(otto.got.balance).toEqual([]);
  expect(otto.got.notification).toEqual([]);
  // kept for the inbox
  const inbox = await jsonOf(await server.request('/v1/notifications', { auth: basic('lina', 'lina-password-1') }));
  expect(inbox.notifications.map((n: ApiNotification) => n.id)).toEqual(expect.arrayContaining(lina.got.notification.map((n) => n.id)));
});
