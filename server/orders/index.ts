// Wiring of orders into a process (server/main.ts): the Trading service, its expiry sweep, the
// execution_report handler for the exchange session, and the outbox dispatchers.
import type { Config } from '../config';
import { OutboxDispatcher } from '../exchange/dispatcher';
import type { MessageHandlers } from '../exchange/session';
import type { FeedGateway } from '../feed/gateway';
import type { AppDeps } from '../http/context';
import { startEventsPublisher } from './publish';
import { Trading } from './trading';

export { Trading } from './trading';

export function createTrading(config: Config, deps: Pick<AppDeps, 'db' | 'tz' | 'clock' | 'log'>): Trading {
  return new Trading({
    db: deps.db, tz: deps.tz, clock: deps.clock, log: deps.log.child({ part: 'orders' }),
    gateClosureMinutes: config.ORDER_GATE_CLOSURE_MINUTES, marketHoldPrice: config.ORDER_MARKET_HOLD_PRICE, shortLimitMw: config.ORDER_SHORT_LIMIT_MW,
    publishEvents: Boolean(config.EXCHANGE_AMQP_URL),
  });
}

/** The session's handlers of the order messages (joined to the gateway's own). */
export function orderHandlers(trading: Trading): MessageHandlers {
  return { execution_report: (tx, messages) => trading.handleReports(tx, messages) };
}

/** Sends the outbox over the gateway's session (and domain events to RabbitMQ when configured); returns the closer. */
export async function startDispatch(config: Config, deps: Pick<AppDeps, 'db' | 'clock' | 'log'>, trading: Trading, gateway: FeedGateway): Promise<() => Promise<void>> {
  const log = deps.log.child({ part: 'dispatcher' });
  const orders = new OutboxDispatcher({
    db: deps.db, clock: deps.clock, log, destination: 'exchange', leaseMs: config.ORDER_DISPATCH_LEASE_MS,
    send: (row) => gateway.send(row.frame as object), ready: () => gateway.connected,
  });
  const closers: (() => Promise<void>)[] = [() => orders.close()];
  const wakers = [() => orders.wake()];
  if (config.EXCHANGE_AMQP_URL) {
    const publisher = await startEventsPublisher(config.EXCHANGE_AMQP_URL, `${config.EXCHANGE_AMQP_PREFIX}.events`, log);
    const events = new OutboxDispatcher({
      db: deps.db, clock: deps.clock, log, destination: 'events', leaseMs: config.ORDER_DISPATCH_LEASE_MS,
      send: (row) => publisher.publish(row.routing_key ?? 'event', row.frame), ready: () => publisher.connected,
    });
    events.start();
    wakers.push(() => events.wake());
    closers.unshift(() => events.close(), () => publisher.close());
  }
  trading.onOutbox = () => { for (const w of wakers) w(); };
  // A group's order_new messages are claimed at insert and sent right after its commit.
  trading.preclaim = { lease: () => orders.lease(), send: (rows) => orders.sendClaimed(rows) };
  gateway.on('connected', () => orders.wake());
  orders.start();
  return async () => {
    trading.preclaim = undefined;
    for (const c of closers) await c();
  };
}
