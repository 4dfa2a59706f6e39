// A tiny exchange for order tests over the real transports (protocol version 2), the websocket
// or RabbitMQ (the session's topology: it consumes P.to-exchange and publishes with key
// from-exchange):
// answers order_new / order_cancel / order_replace with execution reports that carry a seq,
// replays from `resume`, treats a repeated order_new as a request for the order's state, and
// fills only when the test says so (fill()), each fill also sent as a deal_confirmation.
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import amqp from 'amqplib';
import { amqpTopology, declareTopology, routingKeys } from '../../server/exchange/amqp-transport';

/** A test server's settings for trading against a fake exchange at `url`: fast reconnects and acks, no expiry sweep. */
export function linkedEnv(url: string): Record<string, string> {
  return { EXCHANGE_WS_URL: url, FEED_HEARTBEAT_MS: '1000', FEED_BACKOFF_MIN_MS: '20', FEED_BACKOFF_MAX_MS: '200', FEED_BATCH_MS: '2', ORDER_EXPIRY_SWEEP_MS: '100000' };
}

export interface FakeOrder {
  client_order_id: string;
  exchange_order_id: string;
  trader_id: string;
  side: 'buy' | 'sell';
  type: string;
  time_in_force: string;
  delivery_day: string;
  delivery_hour: string;
  quantity: number;
  price?: number;
  filled: number;
  status: string;
}

export interface FakeExchangeOptions {
  /** Acknowledge every new order at once (default true); otherwise call ack(). */
  autoAck?: boolean;
  /** Reject an order instead of acknowledging it (the reason). */
  reject?: (order: FakeOrder) => string | undefined;
  /** Refuse cancels (cancel_rejected) when this returns a reason. */
  refuseCancel?: (order: FakeOrder) => string | undefined;
  refuseReplace?: (order: FakeOrder) => string | undefined;
  /** Called for every order that is new to the exchange. */
  onNew?: (order: FakeOrder, exchange: FakeExchange) => void;
  /** Whether a fill's deal_confirmation goes before its execution report (default false). */
  dealFirst?: boolean;
  /** Over RabbitMQ at this URL with this prefix instead of a websocket server. */
  amqp?: { url: string; prefix: string };
}

export interface FakeExchange {
  url: string;
  orders: Map<string, FakeOrder>;
  /** Every frame received, parsed, in order. */
  received: Record<string, unknown>[];
  /** How many order_new frames arrived per client_order_id. */
  newCount(clientOrderId: string): number;
  journal: string[];
  connections: number;
  ack(clientOrderId: string): void;
  fill(clientOrderId: string, quantity: number, price: number, dealId?: string): void;
  expire(clientOrderId: string): void;
  /** Drops every connection (the client reconnects and resumes). */
  drop(): void;
  close(): Promise<void>;
}

export async function startFakeExchange(options: FakeExchangeOptions = {}): Promise<FakeExchange> {
  const link = options.amqp ? await amqpLink(options.amqp) : await wsLink();
  const sockets = link.sockets;
  const orders = new Map<string, FakeOrder>();
  const received: Record<string, unknown>[] = [];
  const journal: string[] = [];
  const newCounts = new Map<string, number>();
  let nextExchangeId = 1;
  let nextDeal = 1;
  const prefix = `d${Math.random().toString(36).slice(2, 8)}`;

  const emit = (message: object) => {
    const text = JSON.stringify({ seq: journal.length + 1, ...message });
    journal.push(text);
    link.broadcast(text);
  };
  const report = (o: FakeOrder, status: string, extra: Record<string, unknown> = {}) => {
    emit({ execution_report: { client_order_id: o.client_order_id, exchange_order_id: o.exchange_order_id, status, filled_quantity: o.filled, leaves_quantity: Math.max(0, Math.round((o.quantity - o.filled) * 10) / 10), transact_time: new Date().toISOString(), ...extra } });
  };
  const open = (o: FakeOrder) => ['new', 'partially_filled', 'pending_new'].includes(o.status);

  const exchange: FakeExchange = {
    url: link.url,
    orders, received, journal,
    connections: 0,
    newCount: (id) => newCounts.get(id) ?? 0,
    ack(id) {
      const o = orders.get(id)!;
      if (o.status !== 'pending_new') return;
      o.status = 'new';
      report(o, 'new');
    },
    fill(id, quantity, price, dealId) {
      const o = orders.get(id);
      if (!o || !open(o)) throw new Error(`fake exchange: order ${id} is not open`);
      o.filled = Math.round((o.filled + quantity) * 1e6) / 1e6;
      o.status = o.filled >= o.quantity ? 'filled' : 'partially_filled';
      const deal = dealId ?? `${prefix}-${nextDeal++}`;
      const confirmation = {
        deal_confirmation: {
          id: deal, order_id: o.client_order_id, price, quantity, direction: o.side, delivery_day: o.delivery_day, delivery_hour: o.delivery_hour,
          trader_id: o.trader_id, execution_time: new Date(Math.floor(Date.now() / 1000) * 1000).toISOString(),
        },
      };
      const at = confirmation.deal_confirmation.execution_time;
      if (options.dealFirst) emit(confirmation);
      report(o, o.status, { transact_time: at, fill: { deal_id: deal, price, quantity } });
      if (!options.dealFirst) emit(confirmation);
    },
    expire(id) {
      const o = orders.get(id)!;
      o.status = 'expired';
      report(o, 'expired');
    },
    drop() {
      for (const s of sockets) s.terminate();
    },
    async close() {
      for (const s of sockets) s.terminate();
      await link.close();
    },
  };

  link.onConnection(() => { exchange.connections += 1; });
  link.onFrame((data, reply) => {
    {
      let frame: Record<string, Record<string, unknown>>;
      try { frame = JSON.parse(String(data)) as typeof frame; } catch { return; }
      received.push(frame);
      if (frame.resume) {
        const after = Number(frame.resume.after_seq ?? 0);
        for (const text of journal.slice(after)) reply(text);
        return;
      }
      if (frame.order_new) {
        const n = frame.order_new as unknown as FakeOrder;
        newCounts.set(n.client_order_id, (newCounts.get(n.client_order_id) ?? 0) + 1);
        const known = orders.get(n.client_order_id);
        if (known) { // a repeat: the current state, never a second order
          report(known, known.status === 'pending_new' ? 'new' : known.status);
          return;
        }
        const o: FakeOrder = { ...n, exchange_order_id: `X${nextExchangeId++}`, filled: 0, status: 'pending_new' };
        orders.set(o.client_order_id, o);
        const reason = options.reject?.(o);
        if (reason) {
          o.status = 'rejected';
          report(o, 'rejected', { reason });
          return;
        }
        if (options.autoAck ?? true) exchange.ack(o.client_order_id);
        options.onNew?.(o, exchange);
        return;
      }
      if (frame.order_cancel) {
        const o = orders.get(String(frame.order_cancel.client_order_id));
        if (!o) return;
        const refused = open(o) ? options.refuseCancel?.(o) : `order is ${o.status}`;
        if (refused) { report(o, 'cancel_rejected', { reason: refused }); return; }
        o.status = 'canceled';
        report(o, 'canceled');
        return;
      }
      if (frame.order_replace) {
        const r = frame.order_replace as { client_order_id: string; quantity?: number; price?: number };
        const o = orders.get(r.client_order_id);
        if (!o) return;
        const refused = open(o) ? options.refuseReplace?.(o) : `order is ${o.status}`;
        if (refused) { report(o, 'replace_rejected', { reason: refused }); return; }
        if (r.quantity !== undefined) o.quantity = r.quantity;
        if (r.price !== undefined) o.price = r.price;
        report(o, 'replaced');
      }
    }
  });
  return exchange;
}

interface Link {
  url: string;
  sockets: Set<WebSocket>;
  broadcast(text: string): void;
  onConnection(fn: () => void): void;
  /** Every frame from the client, with where to answer a resume. */
  onFrame(fn: (data: string, reply: (text: string) => void) => void): void;
  close(): Promise<void>;
}

async function wsLink(): Promise<Link> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const sockets = new Set<WebSocket>();
  let frameHandler: (data: string, reply: (text: string) => void) => void = () => {};
  let connectionHandler = () => {};
  wss.on('connection', (socket) => {
    sockets.add(socket);
    connectionHandler();
    socket.on('close', () => sockets.delete(socket));
    socket.on('message', (data) => frameHandler(String(data), (text) => socket.send(text)));
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    sockets,
    broadcast(text) { for (const s of sockets) if (s.readyState === s.OPEN) s.send(text); },
    onConnection(fn) { connectionHandler = fn; },
    onFrame(fn) { frameHandler = fn; },
    close: () => new Promise<void>((resolve) => wss.close(() => resolve())),
  };
}

async function amqpLink(options: { url: string; prefix: string }): Promise<Link> {
  const connection = await amqp.connect(options.url);
  const channel = await connection.createConfirmChannel();
  const t = amqpTopology(options.prefix);
  await declareTopology(channel, t);
  const publish = (text: string) => channel.publish(t.exchange, routingKeys.fromExchange, Buffer.from(text), { persistent: true, contentType: 'application/json' });
  let frameHandler: (data: string, reply: (text: string) => void) => void = () => {};
  await channel.consume(t.toExchange, (m) => {
    if (!m) return;
    frameHandler(m.content.toString('utf8'), publish);
    channel.ack(m);
  });
  return {
    url: options.url,
    sockets: new Set(),
    broadcast: publish,
    onConnection() {},
    onFrame(fn) { frameHandler = fn; },
    async close() { await connection.close().catch(() => {}); },
  };
}
