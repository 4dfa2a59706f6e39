// The exchange gateway as its own process: `npm run gateway` with EXCHANGE_WS_URL (or
// EXCHANGE_AMQP_URL) set. On the embedded database the data-dir lock keeps a second process out,
// so next to a running server use DATABASE_URL (a TimescaleDB server) or a DATA_DIR of its own.
import { loadConfig, ConfigError, type Config } from '../server/config';
import { systemClock } from '../server/clock';
import { openToolDb } from './cli';
import { migrate } from '../server/db/migrate';
import { redactUrl } from '../server/exchange/amqp-transport';
import { exchangeUrl, FeedGateway, gatewayOptions } from '../server/feed';
import { createLogger } from '../server/log';

async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) { process.stderr.write(`gateway: ${error.message}\n`); process.exit(2); }
    throw error;
  }
  const url = exchangeUrl(config);
  if (!url) {
    process.stderr.write('gateway: EXCHANGE_WS_URL or EXCHANGE_AMQP_URL: required (e.g. ws://localhost:9001 for npm run exchange-sim)\n');
    process.exit(2);
  }
  const log = createLogger(config.LOG_LEVEL, { process: 'gateway' });
  let db;
  let gateway: FeedGateway;
  try {
    db = await openToolDb('gateway', config);
    await migrate(db, { log: (m) => log.info('migration', { file: m.replace('applied ', '') }) });
    gateway = new FeedGateway(gatewayOptions(config, { db, tz: config.MARKET_TZ, clock: systemClock, log }, ':gateway'));
    await gateway.start();
  } catch (error) {
    log.error(`cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  log.info('gateway running', { gateway: gateway.gatewayId, url: redactUrl(url), database: db.kind });
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
