// RabbitMQ for tests: the broker every machine and CI run on 127.0.0.1:5672 (guest/guest), with
// names unique to each test run, deleted afterwards.
import amqp from 'amqplib';
import { amqpTopology } from '../../server/exchange/amqp-transport';

export const amqpUrl = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export function uniquePrefix(what: string): string {
  return `test.${what}.${process.pid}.${Math.random().toString(36).slice(2, 8)}`;
}

/** Deletes a session's exchange and queues. */
export async function deleteTopology(prefix: string): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    const t = amqpTopology(prefix);
    await channel.deleteQueue(t.fromExchange);
    await channel.deleteQueue(t.toExchange);
    await channel.deleteExchange(t.exchange);
  } finally {
    await connection.close();
  }
}

/** Messages waiting in a queue (not delivered to a consumer). */
export async function queueDepth(queue: string): Promise<number> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    return (await channel.checkQueue(queue)).messageCount;
  } finally {
    await connection.close();
  }
}
