// The exchange session over RabbitMQ (AMQP 0-9-1, amqplib). Topology, declared the same way by
// both sides (idempotent; see server/exchange/README.md):
//   exchange  <prefix>                 direct, durable
//   queue     <prefix>.from-exchange   durable, single active consumer; bound with key "from-exchange"
//   queue     <prefix>.to-exchange     durable; bound with key "to-exchange"
// What the exchange sends is consumed with manual acknowledgements, settled only once committed
// (a crash redelivers it; the seq makes the redelivery harmless), at most `prefetch` unsettled at
// a time. What we send is published persistent on a confirm channel: send() resolves on the
// broker's confirm.
import { EventEmitter } from 'node:events';
import amqp, { type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import type { Logger } from '../log';
import { backoffDelay, NotConnectedError, type Delivery, type LinkOptions, type Transport, type TransportEvents } from './transport';

export interface AmqpTopology {
  exchange: string;
  /** The exchange's messages to us. */
  fromExchange: string;
  /** Our messages to the exchange (resume, orders). */
  toExchange: string;
}

export const routingKeys = { fromExchange: 'from-exchange', toExchange: 'to-exchange' } as const;

export function amqpTopology(prefix: string): AmqpTopology {
  return { exchange: prefix, fromExchange: `${prefix}.from-exchange`, toExchange: `${prefix}.to-exchange` };
}

/** Declares the topology (both sides call it; declaring what exists with the same arguments is a no-op). */
export async function declareTopology(channel: Pick<ConfirmChannel, 'assertExchange' | 'assertQueue' | 'bindQueue'>, t: AmqpTopology): Promise<void> {
  await channel.assertExchange(t.exchange, 'direct', { durable: true });
  // One consumer at a time: redundant gateways stand by and take over in order, instead of
  // splitting the stream between them (which would look like gaps to both).
  await channel.assertQueue(t.fromExchange, { durable: true, arguments: { 'x-single-active-consumer': true } });
  await channel.assertQueue(t.toExchange, { durable: true });
  await channel.bindQueue(t.fromExchange, t.exchange, routingKeys.fromExchange);
  await channel.bindQueue(t.toExchange, t.exchange, routingKeys.toExchange);
}

/** The URL without its password, for logs and the database. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  }
}

/** The AMQP heartbeat (whole seconds) from FEED_HEARTBEAT_MS, unless the URL sets one. */
function withHeartbeat(url: string, heartbeatMs: number): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(Math.max(1, Math.ceil(heartbeatMs / 1000))));
  return u.toString();
}

interface AmqpDelivery {
  generation: number;
  tag: number;
}

interface Outstanding {
  message: ConsumeMessage;
  settled: boolean;
}

export interface AmqpOptions extends LinkOptions {
  prefix: string;
  /** Unacknowledged deliveries at most (the consumer's backpressure). */
  prefetch: number;
}

export class AmqpTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly kind = 'amqp';
  readonly redelivers = true;
  connected = false;
  connections = 0;
  readonly topology: AmqpTopology;
  private connection?: ChannelModel;
  private channel?: ConfirmChannel;
  /** Bumped per channel: a delivery tag is only valid on the channel that delivered it. */
  private generation = 0;
  private outstanding: Outstanding[] = [];
  private byTag = new Map<number, Outstanding>();
  private attempt = 0;
  private closing = false;
  private reconnectTimer?: NodeJS.Timeout;
  private readonly safeUrl: string;

  constructor(private readonly url: string, private readonly o: AmqpOptions, private readonly log: Logger) {
    super();
    this.topology = amqpTopology(o.prefix);
    this.safeUrl = redactUrl(url);
  }

  start(): void {
    void this.connect();
  }

  send(text: string): Promise<void> {
    const channel = this.channel;
    if (!channel || !this.connected) return Promise.reject(new NotConnectedError(this.safeUrl));
    return new Promise((resolve, reject) => {
      try {
        channel.publish(this.topology.exchange, routingKeys.toExchange, Buffer.from(text, 'utf8'), { persistent: true, contentType: 'application/json' }, (error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()));
      } catch (error) {
        reject(error as Error);
      }
    });
  }

  /** Acknowledges, in one frame, the longest run of settled deliveries from the oldest on. */
  settle(deliveries: readonly Delivery[]): void {
    for (const d of deliveries as readonly (AmqpDelivery | undefined)[]) {
      if (!d || d.generation !== this.generation) continue; // that channel is gone: the broker redelivers
      const entry = this.byTag.get(d.tag);
      if (entry) entry.settled = true;
    }
    let last: Outstanding | undefined;
    let n = 0;
    while (n < this.outstanding.length && this.outstanding[n]!.settled) last = this.outstanding[n++];
    if (!last || !this.channel) return;
    for (const e of this.outstanding.slice(0, n)) this.byTag.delete(e.message.fields.deliveryTag);
    this.outstanding.splice(0, n);
    try {
      this.channel.ack(last.message, true);
    } catch (error) {
      this.log.warn('could not acknowledge exchange messages; they will be redelivered', { error: (error as Error).message });
    }
  }

  // The prefetch window is the backpressure: the broker holds the rest.
  pause(): void {}
  resume(): void {}

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    const connection = this.connection;
    this.connection = undefined;
    if (connection) await connection.close().catch(() => {});
    this.down('gateway stopping');
  }

  private async connect(): Promise<void> {
    if (this.closing) return;
    let connection: ChannelModel | undefined;
    try {
      connection = await amqp.connect(withHeartbeat(this.url, this.o.heartbeatMs), { clientProperties: { connection_name: 'powerdesk exchange session' }, timeout: Math.max(2 * this.o.heartbeatMs, 1000) });
      connection.on('error', (error: Error) => this.log.warn('exchange broker connection error', { url: this.safeUrl, error: error.message }));
      connection.on('close', (error?: Error) => {
        if (this.connection === connection) this.connection = undefined;
        this.down(error ? error.message : 'connection closed');
        this.scheduleReconnect();
      });
      if (this.closing) { await connection.close(); return; }
      this.connection = connection;
      const channel = await connection.createConfirmChannel();
      channel.on('error', (error: Error) => this.log.warn('exchange broker channel error', { error: error.message }));
      // A channel closed by the broker (a protocol error) takes the connection with it: start clean.
      channel.on('close', () => { if (this.channel === channel) void connection?.close().catch(() => {}); });
      await declareTopology(channel, this.topology);
      await channel.prefetch(this.o.prefetch);
      this.generation += 1;
      const generation = this.generation;
      this.outstanding = [];
      this.byTag.clear();
      this.channel = channel;
      await channel.consume(this.topology.fromExchange, (message) => {
        if (!message) { // the queue went away (deleted): reconnect, which declares it again
          void connection?.close().catch(() => {});
          return;
        }
        if (generation !== this.generation) return;
        const entry = { message, settled: false };
        this.outstanding.push(entry);
        this.byTag.set(message.fields.deliveryTag, entry);
        this.emit('message', message.content.toString('utf8'), { generation, tag: message.fields.deliveryTag } satisfies AmqpDelivery);
      }, { noAck: false });
      this.attempt = 0;
      this.connections += 1;
      this.connected = true;
      this.emit('up');
    } catch (error) {
      this.log.warn('could not connect to the exchange broker', { url: this.safeUrl, error: (error as Error).message });
      if (connection) {
        if (this.connection === connection) this.connection = undefined;
        await connection.close().catch(() => {}); // its close event schedules the reconnect
        if (!this.connected) this.scheduleReconnect();
      } else this.scheduleReconnect();
    }
  }

  private down(reason: string): void {
    this.channel = undefined;
    this.generation += 1;
    this.outstanding = [];
    this.byTag.clear();
    if (!this.connected) return;
    this.connected = false;
    this.emit('down', reason);
  }

  private scheduleReconnect(): void {
    if (this.closing || this.reconnectTimer) return;
    const delay = backoffDelay(this.attempt, this.o.backoffMinMs, this.o.backoffMaxMs, this.o.random);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => { this.reconnectTimer = undefined; void this.connect(); }, delay);
  }
}
