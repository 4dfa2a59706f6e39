// npm run migrate: apply pending migrations to DATABASE_URL, or the embedded database in DATA_DIR.
import { loadConfig } from '../server/config';
import { openDb } from '../server/db';
import { migrate } from '../server/db/migrate';
import { fail } from './cli';

try {
  const config = loadConfig();
  const db = await openDb({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR });
  try {
    const result = await migrate(db, { log: (m) => process.stdout.write(`${m}\n`) });
    process.stdout.write(`${result.applied.length} applied, ${result.alreadyApplied} already applied (${db.kind} database${db.kind === 'embedded' ? ` in ${config.DATA_DIR}` : ''})\n`);
  } finally {
    await db.close();
  }
} catch (error) {
  fail(`migrate: ${(error as Error).message}`);
}
