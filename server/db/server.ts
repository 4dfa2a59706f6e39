// Server adapter: postgres.js with a pool, for a TimescaleDB server (DATABASE_URL).
import postgres from 'postgres';
import { bulkChunkRows, bulkInsertQuery } from './bulk';
import { oids, parseDate, parseInt8, parseJson, parseNumeric, parseTimestamp, parseTimestamptz, serializeJson } from './parse';
import { render, type SqlQuery } from './sql';
import type { BulkColumn, BulkOptions, Db, Queryable, Row } from './types';

type Runner = postgres.Sql | postgres.TransactionSql;

function queryable(runner: Runner): Queryable {
  return {
    async query<T extends object>(query: SqlQuery): Promise<T[]> {
      const { text, params } = render(query);
      const rows = await runner.unsafe(text, params as postgres.ParameterOrJSON<never>[]);
      return [...rows] as unknown as T[];
    },
    async bulkInsert(table: string, columns: readonly BulkColumn[], rows: readonly unknown[][], options?: BulkOptions) {
      let count = 0;
      for (let i = 0; i < rows.length; i += bulkChunkRows) {
        const { text, params } = render(bulkInsertQuery(table, columns, rows.slice(i, i + bulkChunkRows), options));
        const result = await runner.unsafe(text, params as postgres.ParameterOrJSON<never>[]);
        count += result.count;
      }
      return count;
    },
  };
}

const passthrough = (x: unknown) => String(x);

/**
 * `max` connections in the pool; at least 3, since exclusive() holds one while its work uses
 * another, and a gateway's liveness lock (advisoryLock) holds one for as long as it runs.
 */
export async function openServer(url: string, options: { max?: number } = {}): Promise<Db> {
  const sqlClient = postgres(url, {
    max: Math.max(3, options.max ?? 10),
    onnotice: () => {},
    connection: { TimeZone: 'UTC', application_name: 'powerdesk' },
    types: {
      numeric: { to: oids.numeric, from: [oids.numeric], serialize: passthrough, parse: parseNumeric },
      int8: { to: oids.int8, from: [oids.int8], serialize: passthrough, parse: parseInt8 },
      date: { to: oids.date, from: [oids.date], serialize: passthrough, parse: parseDate },
      timestamptz: { to: oids.timestamptz, from: [oids.timestamptz], serialize: (d: unknown) => (d instanceof Date ? d.toISOString() : String(d)), parse: parseTimestamptz },
      timestamp: { to: oids.timestamp, from: [oids.timestamp], serialize: passthrough, parse: parseTimestamp },
      json: { to: oids.jsonb, from: [oids.json, oids.jsonb], serialize: serializeJson, parse: parseJson },
    },
  });
  await sqlClient`SELECT 1`; // fail fast with the driver's own message when unreachable
  const base = queryable(sqlClient);
  // Connections held for advisory locks: given back on close, or end() would wait for them.
  const reserved = new Set<postgres.ReservedSql>();
  const reserve = async () => {
    const conn = await sqlClient.reserve();
    reserved.add(conn);
    return conn;
  };
  const giveBack = (conn: postgres.ReservedSql) => {
    if (reserved.delete(conn)) conn.release();
  };
  return {
    kind: 'server',
    ...base,
    transaction: async (fn) => (await sqlClient.begin((tx) => fn(queryable(tx)))) as never,
    async execScript(text, opts = {}) {
      if (opts.transaction === false) await sqlClient.unsafe(text);
      else await sqlClient.begin((tx) => tx.unsafe(text));
    },
    async exclusive(lock, fn) {
      const held = await sqlClient.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${lock}::bigint)`;
        return { value: await fn() };
      });
      return held.value;
    },
    async listen(channel, onPayload) {
      const sub = await sqlClient.listen(channel, onPayload);
      return async () => { await sub.unlisten(); };
    },
    async notify(channel, payload) {
      await sqlClient`SELECT pg_notify(${channel}, ${payload})`;
    },
    async advisoryLock(namespace, key) {
      let conn = await reserve();
      const take = async () => ((await conn`SELECT pg_try_advisory_lock(${namespace}::int4, ${key}::int4) AS ok`)[0] as { ok: boolean }).ok;
      if (!(await take())) {
        giveBack(conn);
        return null;
      }
      return {
        async renew() {
          try {
            const [held] = await conn`SELECT count(*)::int4 AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = ${namespace}::int4::oid AND objid = ${key}::int4::oid AND objsubid = 2`;
            if ((held as { n: number }).n > 0) return true;
          } catch { // the connection was lost, and the lock with it
            giveBack(conn);
            conn = await reserve();
          }
          return take();
        },
        async release() {
          await conn`SELECT pg_advisory_unlock(${namespace}::int4, ${key}::int4)`.catch(() => {});
          giveBack(conn);
        },
      };
    },
    async close() {
      for (const conn of [...reserved]) giveBack(conn);
      await sqlClient.end({ timeout: 5 });
    },
  };
}
