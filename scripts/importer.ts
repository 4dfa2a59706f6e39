// `npm run importer`: the nightly file importer as its own process. It talks to the server only
// through the REST API (API_URL) and serves /healthz and /readyz on IMPORTER_PORT.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../server/clock';
import { ConfigError, loadConfig, type Config } from '../server/config';
import { Importer } from '../server/importer/importer';
import { createLogger } from '../server/log';

let config: Config;
try {
  config = loadConfig();
  if (!config.IMPORT_DIR) throw new ConfigError('invalid configuration:\n  IMPORT_DIR: required: the directory the exchange drops epex_trades_YYYYMMDD.csv into');
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`importer: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

const log = createLogger(config.LOG_LEVEL, { part: 'importer' });
const importer = new Importer({
  dir: config.IMPORT_DIR, apiUrl: config.API_URL ?? `http://localhost:${config.PORT}`, apiUser: config.API_USER!, apiPassword: config.API_PASSWORD!,
  tz: config.MARKET_TZ, clock: systemClock, log, deadline: config.IMPORT_DEADLINE,
  settleMs: config.IMPORT_SETTLE_MS, rescanMs: config.IMPORT_RESCAN_MS, batchSize: config.IMPORT_BATCH_SIZE, parallel: config.IMPORT_PARALLEL,
  tty: Boolean(process.stderr.isTTY),
  print: process.stdout.isTTY ? (text) => process.stdout.write(`${text}\n`) : undefined,
});

const health = createServer((req, res) => {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.url === '/healthz') return reply(200, { status: 'ok' });
  if (req.url === '/readyz') {
    void importer.problem().then(
      (problem) => reply(problem ? 503 : 200, problem ? { status: 'not ready', problems: { importer: problem } } : { status: 'ready' }),
      (error: Error) => reply(503, { status: 'not ready', problems: { importer: error.message } }),
    );
    return;
  }
  reply(404, { status_code: 404, message: 'only /healthz and /readyz here' });
});

// The handlers come first: a supervisor may stop the importer while it is still starting.
let stopping = false;
let starting: Promise<void> = Promise.resolve();
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info('stopping', { signal });
  await starting.catch(() => undefined);
  await importer.stop();
  health.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));

health.listen(config.IMPORTER_PORT, config.HOST, () => {
  log.info('importer health endpoints', { url: `http://localhost:${(health.address() as AddressInfo).port}/readyz` });
});
starting = importer.start();
await starting;
