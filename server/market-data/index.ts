// Wiring of the reference-price poller into the server when MARKET_DATA_URL is set.
import type { Config } from '../config';
import type { AppDeps } from '../http/context';
import { ReferencePoller } from './poller';

export { ReferencePoller } from './poller';

export async function startReferencePoller(config: Config, deps: Pick<AppDeps, 'db' | 'tz' | 'clock' | 'log' | 'metrics'>): Promise<ReferencePoller | undefined> {
  if (!config.MARKET_DATA_URL) return undefined;
  const poller = new ReferencePoller({
    db: deps.db, url: config.MARKET_DATA_URL, tz: deps.tz, clock: deps.clock, log: deps.log, metrics: deps.metrics,
    perMinute: config.MARKET_DATA_PER_MINUTE, perHour: config.MARKET_DATA_PER_HOUR,
    refreshMs: config.MARKET_DATA_REFRESH_MS, timeoutMs: config.MARKET_DATA_TIMEOUT_MS,
  });
  poller.start();
  return poller;
}
