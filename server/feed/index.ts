// Wiring of the exchange gateway into a process (the server's start(), or scripts/gateway.ts).
import type { Config } from '../config';
import type { AppDeps } from '../http/context';
import { FeedGateway } from './gateway';

export { FeedGateway } from './gateway';

/** Starts the gateway when EXCHANGE_WS_URL is set, with a readiness check; undefined otherwise. */
export async function startFeedGateway(config: Config, deps: Pick<AppDeps, 'db' | 'tz' | 'clock' | 'log' | 'metrics' | 'readiness'>): Promise<FeedGateway | undefined> {
  if (!config.EXCHANGE_WS_URL) return undefined;
  const gateway = new FeedGateway({
    db: deps.db, url: config.EXCHANGE_WS_URL, tz: deps.tz, clock: deps.clock, log: deps.log, metrics: deps.metrics,
    gatewayId: config.FEED_GATEWAY_ID, heartbeatMs: config.FEED_HEARTBEAT_MS,
    backoffMinMs: config.FEED_BACKOFF_MIN_MS, backoffMaxMs: config.FEED_BACKOFF_MAX_MS,
    batchMax: config.FEED_BATCH_MAX, batchMs: config.FEED_BATCH_MS, gateClosureMinutes: config.FEED_GATE_CLOSURE_MINUTES,
  });
  await gateway.start();
  deps.readiness.push({
    name: 'feed',
    check: async () => (gateway.connected ? undefined : `not connected to the exchange (${config.EXCHANGE_WS_URL}) since ${gateway.since?.toISOString() ?? 'start'}`),
  });
  return gateway;
}
