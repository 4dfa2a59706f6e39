// Feed status from the database, so any server process can answer it, whichever process runs
// the gateway(s): counts summed over gateways; the feed counts as down when no gateway is
// connected; the exchange session's resume point and gaps per member.
import type { Db } from '../db';
import { sql } from '../db';
import { locks } from '../db/locks';
import type { SqlQuery } from '../db/sql';
import type { FeedStatus, SessionStatus } from '../live/events';
import { dayBounds, localDay } from '../time/market-time';

/** A gateway whose liveness beat is older than this is treated as gone since its last beat. */
export const defaultStaleMs = 30_000;

/** Advisory lock namespace of the gateways' liveness locks (pg_advisory_lock(namespace, key)). */
export const livenessNamespace = locks.gatewayLiveness;

/**
 * Whether the gateway of row `g` (feed_gateways) is running: it holds its liveness lock (the
 * database drops the lock the moment its process dies) and its beat is recent (not hung).
 * Rows written before gateways held locks are judged by their beat alone.
 */
export function alive(staleMs: number, now: Date): SqlQuery {
  const fresh = new Date(now.getTime() - staleMs);
  return sql`(g.seen_at > ${fresh}::timestamptz AND (g.lock_key IS NULL OR EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = ${livenessNamespace}::int4::oid AND l.objid = g.lock_key::oid AND l.objsubid = 2)))`;
}

interface GatewayRow {
  gateway_id: string;
  received: number; stored: number; duplicates: number; conflicts: number; dead_lettered: number; recalls: number; ignored: number;
  last_message_at: Date | null;
  seen_at: Date;
  alive: boolean;
  store_failing_since: Date | null;
  store_error: string | null;
}

/** A running gateway that cannot store what the exchange sends (the database fails; it retries). */
export interface StoreFailure { gateway_id: string; since: string; error: string }

export type FeedStatusWithStore = FeedStatus & { store_failures: StoreFailure[] };

/** Gaps listed per member: today's and every one still open, the latest this many. */
const maxGaps = 200;

export async function feedStatus(db: Db, tz: string, now: Date, staleMs = defaultStaleMs): Promise<FeedStatusWithStore> {
  const gateways = await db.query<GatewayRow>(sql`
    SELECT gateway_id, received, stored, duplicates, conflicts, dead_lettered, recalls, ignored, last_message_at, seen_at, store_failing_since, store_error, ${alive(staleMs, now)} AS alive
    FROM feed_gateways g`);
  const storeFailures = gateways.filter((g) => g.alive && g.store_failing_since)
    .map((g) => ({ gateway_id: g.gateway_id, since: g.store_failing_since!.toISOString(), error: g.store_error ?? '' }));
  const counts = { received: 0, stored: 0, duplicates: 0, conflicts: 0, dead_lettered: 0, recalls: 0, ignored: 0 };
  let lastMessage: Date | null = null;
  const byId = new Map<string, GatewayRow>();
  for (const g of gateways) {
    counts.received += g.received; counts.stored += g.stored; counts.duplicates += g.duplicates;
    counts.conflicts += g.conflicts; counts.dead_lettered += g.dead_lettered; counts.recalls += g.recalls; counts.ignored += g.ignored;
    if (g.last_message_at && (!lastMessage || g.last_message_at > lastMessage)) lastMessage = g.last_message_at;
    byId.set(g.gateway_id, g);
  }
  const dayStart = dayBounds(localDay(now, tz), tz).start;
  const sessions = await sessionStatus(db, dayStart);
  // A week back is enough to find when the current connected stretch began.
  const lookback = new Date(dayStart.getTime() - 7 * 86_400_000);
  const [first] = await db.query<{ first: Date | null }>(sql`SELECT min(started_at) AS first FROM feed_intervals`);
  const rows = await db.query<{ gateway_id: string; started_at: Date; ended_at: Date | null }>(sql`
    SELECT gateway_id, started_at, ended_at FROM feed_intervals
    WHERE state = 'connected' AND (ended_at IS NULL OR ended_at > ${lookback}) AND started_at <= ${now}
    ORDER BY started_at`);
  const status: FeedStatusWithStore = { connected: false, since: null, last_message_at: lastMessage?.toISOString() ?? null, counts, disconnected_intervals: [], sessions, store_failures: storeFailures };
  if (!first?.first) return status;

  const blocks: { from: number; to: number; open: boolean }[] = [];
  for (const r of rows) {
    let to = now.getTime();
    let open = false;
    if (r.ended_at) to = Math.min(r.ended_at.getTime(), to);
    else {
      // An open interval of a gateway that is gone (killed, hung) ended at its last beat.
      const g = byId.get(r.gateway_id);
      if (g?.alive) open = true;
      else to = Math.max(g?.seen_at.getTime() ?? r.started_at.getTime(), r.started_at.getTime());
    }
    const from = r.started_at.getTime();
    const last = blocks[blocks.length - 1];
    if (last && from <= last.to) {
      last.to = Math.max(last.to, to);
      last.open ||= open;
    } else blocks.push({ from, to, open });
  }
  const current = blocks.find((b) => b.open);
  status.connected = current !== undefined;
  const iso = (t: number) => new Date(t).toISOString();
  if (current) status.since = iso(current.from);
  else status.since = iso(blocks.length ? blocks[blocks.length - 1]!.to : first.first.getTime());

  // Gaps between connected stretches, within today and since the gateway first ran.
  let cursor = Math.max(dayStart.getTime(), first.first.getTime());
  for (const b of blocks) {
    if (b.to <= cursor) continue;
    if (b.from > cursor) status.disconnected_intervals.push({ from: iso(cursor), to: iso(b.from) });
    cursor = Math.max(cursor, b.to);
  }
  if (!status.connected && cursor <= now.getTime()) status.disconnected_intervals.push({ from: iso(cursor), to: null });
  return status;
}

async function sessionStatus(db: Db, dayStart: Date): Promise<SessionStatus[]> {
  const sessions = await db.query<{ member: string; committed_seq: number; exchange_seq: number; resets: number; updated_at: Date }>(sql`
    SELECT member, committed_seq, exchange_seq, resets, updated_at FROM exchange_sessions ORDER BY member`);
  if (!sessions.length) return [];
  const gaps = await db.query<{ member: string; from_seq: number; to_seq: number; detected_at: Date; filled_at: Date | null; lost_at: Date | null }>(sql`
    SELECT member, from_seq, to_seq, detected_at, filled_at, lost_at FROM (
      SELECT member, from_seq, to_seq, detected_at, filled_at, lost_at, id,
             row_number() OVER (PARTITION BY member ORDER BY id DESC) AS n
      FROM exchange_gaps WHERE detected_at >= ${dayStart} OR (filled_at IS NULL AND lost_at IS NULL)) g
    WHERE n <= ${maxGaps} ORDER BY member, id`);
  const iso = (d: Date | null) => d?.toISOString() ?? null;
  return sessions.map((s) => ({
    member: s.member,
    committed_seq: s.committed_seq,
    exchange_seq: s.exchange_seq,
    resets: s.resets,
    updated_at: s.updated_at.toISOString(),
    gaps: gaps.filter((g) => g.member === s.member).map((g) => ({ from_seq: g.from_seq, to_seq: g.to_seq, detected_at: g.detected_at.toISOString(), filled_at: iso(g.filled_at), lost_at: iso(g.lost_at) })),
  }));
}
