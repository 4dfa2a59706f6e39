// The exchange gateway as its own process: `npm run gateway` with EXCHANGE_WS_URL set. On the
// embedded database the data-dir lock keeps a second process out, so next to a running server use
// DATABASE_URL (a TimescaleDB server) or a DATA_DIR of its own.
import { loadConfig, ConfigError, type Config } from '../server/config';
import { systemClock } from '../server/clock';
import { openDb } from '../server/db';
import { migrate } from '../server/db/migrate';
import { FeedGateway } from '../server/feed/gateway';
import { createLogger } from '../server/log';

async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) { process.stderr.write(`gateway: ${error.message}\n`); process.exit(2); }
    throw error;
  }
  if (!config.EXCHANGE_WS_URL) {
    process.stderr.write('gateway: EXCHANGE_WS_URL: required (e.g. ws://localhost:9001 for npm run exchange-sim)\n');
    process.exit(2);
  }
  const log = createLogger(config.LOG_LEVEL, { process: 'gateway' });
  let db;
  try {
    db = await openDb({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR });
    await migrate(db, { log: (m) => log.info('migration', { file: m.replace('applied ', '') }) });
  } catch (error) {
    log.error(`cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  const gateway = new FeedGateway({
    db, url: config.EXCHANGE_WS_URL, tz: config.MARKET_TZ, clock: systemClock, log,
    gatewayId: config.FEED_GATEWAY_ID, heartbeatMs: config.FEED_HEARTBEAT_MS,
    backoffMinMs: config.FEED_BACKOFF_MIN_MS, backoffMaxMs: config.FEED_BACKOFF_MAX_MS,
    batchMax: config.FEED_BATCH_MAX, batchMs: config.FEED_BATCH_MS, gateClosureMinutes: config.FEED_GATE_CLOSURE_MINUTES,
  });
  await gateway.start();
  log.info('gateway running', { gateway: gateway.gatewayId, url: config.EXCHANGE_WS_URL, database: db.kind });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal, counts: gateway.counts });
    await gateway.close();
    await db.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

void main();
