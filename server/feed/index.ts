// Wiring of the exchange gateway into a process (the server's start(), or scripts/gateway.ts).
import os from 'node:os';
import type { Config } from '../config';
import { redactUrl } from '../exchange/amqp-transport';
import type { MessageHandlers } from '../exchange/session';
import type { AppDeps, ReadinessCheck } from '../http/context';
import { FeedGateway, type GatewayOptions } from './gateway';

export { FeedGateway } from './gateway';

/** The exchange's URL from the config: the websocket (EXCHANGE_WS_URL) or RabbitMQ (EXCHANGE_AMQP_URL). */
export function exchangeUrl(config: Config): string | undefined {
  return config.EXCHANGE_WS_URL ?? config.EXCHANGE_AMQP_URL;
}

/** The gateway's options from the config; its id defaults to the host name (`suffix` tells apart other roles on one host). */
export function gatewayOptions(config: Config, deps: Pick<AppDeps, 'db' | 'tz' | 'clock' | 'log'> & Partial<Pick<AppDeps, 'metrics'>>, suffix = ''): GatewayOptions {
  return {
    db: deps.db, url: exchangeUrl(config)!, tz: deps.tz, clock: deps.clock, log: deps.log, metrics: deps.metrics,
    gatewayId: config.FEED_GATEWAY_ID ?? `${os.hostname()}${suffix}`, member: config.EXCHANGE_MEMBER,
    heartbeatMs: config.FEED_HEARTBEAT_MS, backoffMinMs: config.FEED_BACKOFF_MIN_MS, backoffMaxMs: config.FEED_BACKOFF_MAX_MS,
    batchMax: config.FEED_BATCH_MAX, batchMs: config.FEED_BATCH_MS, resumeTimeoutMs: config.EXCHANGE_RESUME_TIMEOUT_MS,
    amqpPrefix: config.EXCHANGE_AMQP_PREFIX, amqpPrefetch: config.EXCHANGE_AMQP_PREFETCH,
    gateClosureMinutes: config.FEED_GATE_CLOSURE_MINUTES,
  };
}

/** Ready while the gateway is connected and what it receives gets stored. */
export function feedReadiness(gateway: FeedGateway, url: string): ReadinessCheck {
  return {
    name: 'feed',
    check: async () => {
      const failing = gateway.storeFailure;
      if (failing) return `cannot store exchange messages since ${failing.since.toISOString()} (${failing.attempts} attempts, retrying): ${failing.error}`;
      return gateway.connected ? undefined : `not connected to the exchange (${redactUrl(url)}) since ${gateway.since?.toISOString() ?? 'start'}`;
    },
  };
}

/**
 * Starts the gateway when EXCHANGE_WS_URL or EXCHANGE_AMQP_URL is set, with a readiness check;
 * undefined otherwise. `handlers` take further message kinds in the transaction of their seq.
 */
export async function startFeedGateway(config: Config, deps: Pick<AppDeps, 'db' | 'tz' | 'clock' | 'log' | 'metrics' | 'readiness'>, handlers?: MessageHandlers): Promise<FeedGateway | undefined> {
  const url = exchangeUrl(config);
  if (!url) return undefined;
  const gateway = new FeedGateway({ ...gatewayOptions(config, deps), handlers });
  await gateway.start();
  deps.readiness.push(feedReadiness(gateway, url));
  return gateway;
}
