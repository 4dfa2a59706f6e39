// Compression of old meter chunks. TimescaleDB's add_compression_policy is accepted by the
// embedded database but never runs (no job scheduler), so the server (METER_COMPRESS_EVERY_MINUTES)
// or `npm run compress-meters` compresses explicitly; on a TimescaleDB server either works.
import type { Db } from '../db';
import { sql } from '../db';
import type { Logger } from '../log';

export const compressedTables = ['meter_readings', 'match_results'] as const;

/** Compresses every chunk whose data is entirely older than `olderThanDays` before now; returns how many. */
export async function compressOldChunks(db: Db, olderThanDays: number): Promise<{ table: string; chunks: number }[]> {
  const out: { table: string; chunks: number }[] = [];
  for (const table of compressedTables) {
    const name = table === 'meter_readings' ? sql`'meter_readings'` : sql`'match_results'`;
    const rows = await db.query<{ chunk: string }>(sql`
      SELECT compress_chunk(c, if_not_compressed => true)::text AS chunk
      FROM show_chunks(${name}::regclass, older_than => now() - make_interval(days => ${olderThanDays}::int)) AS c
      WHERE NOT EXISTS (SELECT 1 FROM timescaledb_information.chunks i
                        WHERE i.is_compressed AND format('%I.%I', i.chunk_schema, i.chunk_name)::regclass = c)`);
    out.push({ table, chunks: rows.length });
  }
  return out;
}

/** A periodic compression pass in the server process; returns its stopper. */
export function startCompressionTask(db: Db, log: Logger, olderThanDays: number, everyMinutes: number): () => Promise<void> {
  let running: Promise<unknown> | undefined;
  const pass = () => {
    if (running) return;
    running = compressOldChunks(db, olderThanDays)
      .then((result) => { if (result.some((r) => r.chunks)) log.info('compressed meter chunks', { result }); })
      .catch((error: Error) => log.warn('meter compression failed', { error: error.message }))
      .finally(() => { running = undefined; });
  };
  const timer = setInterval(pass, everyMinutes * 60_000);
  timer.unref();
  pass();
  return async () => { clearInterval(timer); await running; };
}
