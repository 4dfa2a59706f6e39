// Shared bits of the command-line tools: argument parsing with usage errors (exit 2).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Config } from '../server/config';
import { openDb, type Db } from '../server/db';

export function parseCli<T extends ParseArgsConfig['options']>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage}\n`);
    process.exit(2);
  }
}

export function fail(message: string, code = 1): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

/** parseArgs with a one-line message and exit code 2, instead of a stack trace, for a wrong option. */
export function parseOptions<const T extends ParseArgsConfig>(tool: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    process.stderr.write(`${tool}: ${(error as Error).message}\n`);
    process.exit(2);
  }
}

/**
 * Opens the database of the config and says on stderr which one: a tool that writes users or data
 * into another database than the server's must not do it silently.
 */
export async function openToolDb(tool: string, config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR'>): Promise<Db> {
  if (config.DATABASE_URL) {
    const url = new URL(config.DATABASE_URL);
    if (url.password) url.password = '***';
    const db = await openDb({ databaseUrl: config.DATABASE_URL });
    process.stderr.write(`${tool}: database ${url.toString()} (DATABASE_URL)\n`);
    return db;
  }
  const created = !existsSync(path.join(config.DATA_DIR, 'pgdata'));
  const db = await openDb({ dataDir: config.DATA_DIR });
  process.stderr.write(created
    ? `${tool}: created a new embedded database in ${config.DATA_DIR} (DATA_DIR): no server has used it yet. The demo's is DATA_DIR=./data/demo\n`
    : `${tool}: embedded database in ${config.DATA_DIR} (DATA_DIR)\n`);
  return db;
}
