// With RabbitMQ configured, the domain events (order, balance, notification) also go from the
// outbox to the topic exchange P.events, for other services (the real broker on 127.0.0.1:5672).
import amqp from 'amqplib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { amqpUrl, deleteTopology, uniquePrefix } from './helpers/amqp';
import { startFakeExchange, type FakeExchange } from './helpers/fake-exchange-orders';
import { jsonOf, startTestServer, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

const prefix = uniquePrefix('orders-events');
let server: TestServer;
let exchange: FakeExchange;
let connection: amqp.ChannelModel;
const got: { key: string; body: Record<string, unknown> }[] = [];

beforeAll(async () => {
  exchange = await startFakeExchange({ amqp: { url: amqpUrl, prefix } });
  connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  await channel.assertExchange(`${prefix}.events`, 'topic', { durable: true });
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, `${prefix}.events`, '#');
  await channel.consume(queue, (m) => { if (m) got.push({ key: m.fields.routingKey, body: JSON.parse(m.content.toString()) }); }, { noAck: true });
  server = await startTestServer({ clock: { now: () => new Date('2026-12-01T12:00:00Z') }, env: { EXCHANGE_AMQP_URL: amqpUrl, EXCHANGE_AMQP_PREFIX: prefix, FEED_BACKOFF_MIN_MS: '20', FEED_BACKOFF_MAX_MS: '200', FEED_BATCH_MS: '2' } });
  await until(() => server.gateway?.connected, 'gateway connected');
}, 60_000);
afterAll(async () => {
  await server?.close();
  await exchange?.close();
  const channel = await connection.createChannel();
  await channel.deleteExchange(`${prefix}.events`);
  await connection.close();
  await deleteTopology(prefix);
});

it('publishes order, balance and notification events with topic routing keys', async () => {
  expect((await server.request('/v1/accounts/ev_t/cash', { method: 'POST', json: { amount: '500.00' } })).status).toBe(200);
  const res = await server.request('/v1/orders', { method: 'POST', json: { trader_id: 'ev_t', side: 'buy', type: 'limit', delivery_day: '2026-12-02', delivery_hour: 9, quantity: 2, limit_price: 3000 } });
  const order = await jsonOf(res);
  await until(() => got.some((e) => e.key === 'order.new'), 'order.new published', 30_000);
  const keys = got.map((e) => e.key);
  expect(keys).toEqual(expect.arrayContaining(['balance.updated', 'notification.deposit', 'order.pending_new', 'notification.placed', 'order.new']));
  expect(keys.indexOf('order.pending_new')).toBeLessThan(keys.indexOf('order.new'));
  expect(got.find((e) => e.key === 'order.new')!.body).toMatchObject({ type: 'order', trader_id: 'ev_t', order: { id: order.id, status: 'new', held: '60.00' } });
  expect(got.filter((e) => e.key === 'balance.updated').map((e) => (e.body.balance as { available: string }).available)).toEqual(['500.00', '440.00']);
  // the order itself went to the exchange over the same broker
  expect(exchange.orders.get(order.id)).toMatchObject({ quantity: 2, price: 30 });
});
