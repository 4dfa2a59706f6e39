// The database servers tests run against: CI's PostgreSQL (TEST_DATABASE_URL, TimescaleDB not
// loaded) and, where one exists, a TimescaleDB server (TEST_TIMESCALE_URL). Each suite gets a
// database or schema of its own so that parallel files and earlier runs never meet.
import crypto from 'node:crypto';
import postgres from 'postgres';
import { openServer } from '../../server/db/server';
import { checkIdentifier } from '../../server/db/sql';
import type { Db } from '../../server/db';

export const postgresUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const timescaleUrl = process.env.TEST_TIMESCALE_URL;

/** The PostgreSQL server, or undefined with a loud warning (a failure under CI). */
export async function reachPostgres(url = postgresUrl): Promise<Db | undefined> {
  try {
    return await openServer(url, { max: 2 });
  } catch (error) {
    const message = `PostgreSQL at ${postgresUrl} is not reachable (${(error as Error).message}): the postgres.js adapter tests cannot run`;
    if (process.env.CI) throw new Error(`${message}; CI is set, so this is a failure`);
    console.warn(`\n!!! SKIPPING: ${message}. Set TEST_DATABASE_URL to a reachable server. !!!\n`);
    return undefined;
  }
}

const suffix = () => crypto.randomBytes(4).toString('hex');

function withParam(url: string, key: string, value: string): string {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
}

/** A schema of its own on the PostgreSQL server: the URL that puts it first on the search_path. */
export async function freshSchema(name: string): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  const admin = await reachPostgres();
  if (!admin) return undefined;
  const schema = checkIdentifier(`pd_${name}_${suffix()}`);
  await admin.execScript(`CREATE SCHEMA ${schema}`, { transaction: false });
  await admin.close();
  return {
    url: withParam(postgresUrl, 'search_path', schema),
    async drop() {
      const sqlClient = postgres(postgresUrl, { max: 1, onnotice: () => {} });
      await sqlClient.unsafe(`DROP SCHEMA ${schema} CASCADE`);
      await sqlClient.end();
    },
  };
}

/**
 * A new, empty database on the TimescaleDB server of TEST_TIMESCALE_URL; undefined (and a loud
 * warning, also under CI, which has no such server) without it.
 */
export async function freshTimescaleDatabase(name: string, what: string): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  if (!timescaleUrl) {
    console.warn(`\n!!! SKIPPING: ${what} needs a TimescaleDB server: set TEST_TIMESCALE_URL (e.g. postgres://postgres@127.0.0.1:5433/ts_x). !!!\n`);
    return undefined;
  }
  const database = checkIdentifier(`${new URL(timescaleUrl).pathname.slice(1) || 'ts'}_${name}_${suffix()}`);
  const admin = postgres(timescaleUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${database}`);
  await admin.end();
  const url = new URL(timescaleUrl);
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    async drop() {
      const again = postgres(timescaleUrl, { max: 1, onnotice: () => {} });
      await again.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await again.end();
    },
  };
}
