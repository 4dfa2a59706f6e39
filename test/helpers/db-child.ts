// A server process whose database is held by the test process (test/helpers/db-host.ts): the
// real start() and the stop on SIGTERM of server/main.ts, with RemoteDb instead of openDb.
import { loadConfig } from '../../server/config';
import { createLogger } from '../../server/log';
import { start } from '../../server/main';
import { RemoteDb } from './db-host';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL);
const server = await start(config, { db: new RemoteDb(), log });
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  log.info('stopping', { signal: 'SIGTERM' });
  void server.close().then(() => process.exit(0));
});
