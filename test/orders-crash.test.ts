// kill -9 of the real server process between commit and send (orders placed while no exchange
// link runs), between send and report (killed the moment the exchange receives an order_new),
// and while execution reports with fills stream in, repeated, over the websocket and RabbitMQ:
// every order reaches the exchange as one order, and every fill is applied exactly once
// (one order_fills row, one trade, one cost in the ledger).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { localDay } from '../server/time/market-time';
import amqp from 'amqplib';
import { amqpUrl, deleteTopology, uniquePrefix } from './helpers/amqp';
import { startFakeExchange, type FakeExchange, type FakeExchangeOptions } from './helpers/fake-exchange-orders';
import { startServerProcess, type ServerProcess } from './helpers/process';
import { adminAuth } from './helpers/server';
import { until } from './helpers/wait';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => { while (cleanup.length) await cleanup.pop()!().catch(() => {}); });

const post = (server: ServerProcess, p: string, json: unknown) => fetch(`${server.url}${p}`, { method: 'POST', headers: { authorization: adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(json) });
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const get = async (server: ServerProcess, p: string): Promise<any> => (await server.request(p)).json();

/** The domain events' topic exchange the server declared. */
async function deleteExchange(name: string): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  try {
    await (await connection.createChannel()).deleteExchange(name);
  } finally {
    await connection.close();
  }
}

for (const transport of ['websocket', 'rabbitmq'] as const) {
  describe(`kill -9 around orders (${transport})`, () => {
    it('no order sent twice, no fill lost or doubled', async () => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-orders-crash-'));
      cleanup.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
      const prefix = uniquePrefix('orders-crash');
      const behaviour: FakeExchangeOptions = transport === 'rabbitmq' ? { amqp: { url: amqpUrl, prefix } } : {};
      const exchange: FakeExchange = await startFakeExchange(behaviour);
      cleanup.push(() => exchange.close());
      if (transport === 'rabbitmq') cleanup.push(() => deleteTopology(prefix), () => deleteExchange(`${prefix}.events`));
      const base = {
        DATA_DIR: dataDir, FEED_GATEWAY_ID: 'orders-crash', EXCHANGE_MEMBER: 'orders-crash', ORDER_DISPATCH_LEASE_MS: '300', ORDER_EXPIRY_SWEEP_MS: '600000',
        FEED_HEARTBEAT_MS: '1000', FEED_BACKOFF_MIN_MS: '20', FEED_BACKOFF_MAX_MS: '200', FEED_BATCH_MS: '2',
      };
      const linked = { ...base, ...(transport === 'websocket' ? { EXCHANGE_WS_URL: exchange.url } : { EXCHANGE_AMQP_URL: amqpUrl, EXCHANGE_AMQP_PREFIX: prefix }) };
      let server: ServerProcess | undefined;
      cleanup.push(() => server?.kill() ?? Promise.resolve());
      const day = localDay(new Date(Date.now() + 2 * 86_400_000), 'Europe/Berlin');
      const t = 'crash_t';
      const fills: { order: string; quantity: number; price: number }[] = [];
      let placed = 0;
      const placeSome = async (count: number) => {
        for (let i = 0; i < count; i++) {
          placed += 1;
          const res = await post(server!, '/v1/orders', { trader_id: t, side: 'buy', type: 'limit', delivery_day: day, delivery_hour: 6 + (placed % 12), quantity: 2 + (placed % 3), limit_price: 4000 + 100 * (placed % 7) });
          expect(res.status).toBe(201);
        }
      };
      const fillSome = (count: number) => {
        const open = [...exchange.orders.values()].filter((o) => o.status === 'new' || o.status === 'partially_filled').slice(0, count);
        for (const o of open) {
          const quantity = Math.min(1, Math.round((o.quantity - o.filled) * 10) / 10);
          exchange.fill(o.client_order_id, quantity, (o.price ?? 40) - 1);
          fills.push({ order: o.client_order_id, quantity, price: (o.price ?? 40) - 1 });
        }
      };

      for (let round = 0; round < 2; round++) {
        // 1. Committed, never sent: placed while this process has no exchange link, then killed.
        server = await startServerProcess(base);
        if (round === 0) expect((await post(server, `/v1/accounts/${t}/cash`, { amount: '1000000.00' })).status).toBe(200);
        await placeSome(4);
        await server.kill();

        // 2. Sent, not answered: the exchange keeps quiet, and the process is killed once the orders arrived there.
        behaviour.autoAck = false;
        server = await startServerProcess(linked);
        await until(() => exchange.orders.size === placed, 'the unsent orders at the exchange', 60_000);
        await server.kill();
        // While it is down the exchange acknowledges and fills (replayed on the next start).
        for (const o of exchange.orders.values()) if (o.status === 'pending_new') exchange.ack(o.client_order_id);
        fillSome(3);

        // 3. Back up: everything unsent goes out once, the replay comes in; then reports stream while it is killed.
        behaviour.autoAck = true;
        server = await startServerProcess(linked);
        await placeSome(3);
        await until(() => exchange.orders.size === placed, `all ${placed} orders at the exchange (has ${exchange.orders.size})`, 60_000);
        for (const o of exchange.orders.values()) if (o.status === 'pending_new') exchange.ack(o.client_order_id);
        fillSome(4);
        await until(async () => (await get(server!, `/v1/orders?trader_id=${t}&limit=500`)).orders.some((o: { fills: unknown[] }) => o.fills.length > 0), 'a fill applied', 60_000);
        fillSome(4); // in flight while it dies
        await server.kill();
      }

      server = await startServerProcess(linked);
      const expectedFilled = new Map<string, number>();
      for (const f of fills) expectedFilled.set(f.order, Math.round(((expectedFilled.get(f.order) ?? 0) + f.quantity) * 10) / 10);
      const orders = await until(async () => {
        const list = (await get(server!, `/v1/orders?trader_id=${t}&limit=500`)).orders as { id: string; status: string; filled_quantity: number; fills: unknown[]; held: string }[];
        const done = list.length === placed && list.every((o) => o.status !== 'pending_new' && o.filled_quantity === (expectedFilled.get(o.id) ?? 0));
        return done ? list : undefined;
      }, 'every order acknowledged and every fill applied', 90_000);

      // Every order reached the exchange as exactly one order; no order the exchange has is unknown here.
      expect(new Set(orders.map((o) => o.id))).toEqual(new Set(exchange.orders.keys()));
      const newFrames = exchange.received.filter((f) => f.order_new).map((f) => (f.order_new as { client_order_id: string }).client_order_id);
      expect(new Set(newFrames).size).toBe(placed);
      // Fills: each exactly once, as a fill of its order, a trade and a cost.
      expect(orders.reduce((n, o) => n + o.fills.length, 0)).toBe(fills.length);
      const trades = (await get(server, `/v1/trades?trader_id=${t}`)) as { id: string }[];
      expect(trades).toHaveLength(fills.length);
      const ledger = (await get(server, `/v1/transactions?trader_id=${t}&limit=500`)).transactions as { kind: string; amount: string; held_amount: string }[];
      expect(ledger.filter((e) => e.kind === 'fill_cost')).toHaveLength(fills.length);
      const costCents = fills.reduce((sum, f) => sum + Math.round(f.price * 100 * f.quantity), 0); // whole hours, 0.1 MW steps: exact cents
      const balance = await get(server, `/v1/balance?trader_id=${t}`);
      expect(balance.total).toBe(((100_000_000 - costCents) / 100).toFixed(2));
      expect(balance.held).toBe((orders.reduce((sum, o) => sum + Math.round(Number(o.held) * 100), 0) / 100).toFixed(2));
      const sum = (k: 'amount' | 'held_amount') => ledger.reduce((s, e) => s + Math.round(Number(e[k]) * 100), 0) / 100;
      expect(sum('amount').toFixed(2)).toBe(balance.available);
      expect(sum('held_amount').toFixed(2)).toBe(balance.held);
    }, 400_000);
  });
}
