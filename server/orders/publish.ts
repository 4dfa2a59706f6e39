// Domain events (order, balance, notification) to a RabbitMQ topic exchange for other
// services: persistent messages on a confirm channel, routing keys order.<status>,
// balance.updated, notification.<kind>. Reconnects with a capped backoff; the outbox keeps
// what could not be published.
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { redactUrl } from '../exchange/amqp-transport';
import type { Logger } from '../log';

export interface EventsPublisher {
  readonly connected: boolean;
  publish(routingKey: string, body: unknown): Promise<void>;
  close(): Promise<void>;
}

export async function startEventsPublisher(url: string, exchange: string, log: Logger): Promise<EventsPublisher> {
  let connection: ChannelModel | undefined;
  let channel: ConfirmChannel | undefined;
  let closed = false;
  let delay = 500;
  let timer: NodeJS.Timeout | undefined;
  const connect = async () => {
    try {
      const c = await amqp.connect(url, { clientProperties: { connection_name: 'powerdesk domain events' } });
      const ch = await c.createConfirmChannel();
      await ch.assertExchange(exchange, 'topic', { durable: true });
      c.on('error', () => {});
      c.on('close', () => {
        channel = undefined;
        connection = undefined;
        if (!closed) retry();
      });
      connection = c;
      channel = ch;
      delay = 500;
      log.info('publishing domain events', { url: redactUrl(url), exchange });
    } catch (error) {
      log.warn('cannot reach RabbitMQ for domain events (trying again)', { url: redactUrl(url), error: (error as Error).message });
      retry();
    }
  };
  const retry = () => {
    if (closed) return;
    timer = setTimeout(() => void connect(), delay);
    timer.unref?.();
    delay = Math.min(delay * 2, 30_000);
  };
  await connect();
  return {
    get connected() { return channel !== undefined; },
    publish(routingKey, body) {
      const ch = channel;
      if (!ch) return Promise.reject(new Error('not connected to RabbitMQ'));
      return new Promise((resolve, reject) => {
        try {
          ch.publish(exchange, routingKey, Buffer.from(JSON.stringify(body)), { persistent: true, contentType: 'application/json' }, (error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()));
        } catch (error) {
          reject(error as Error);
        }
      });
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await connection?.close().catch(() => {});
    },
  };
}
