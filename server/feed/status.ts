// Feed status from the database, so any server process can answer it, whichever process runs
// the gateway(s): counts summed over gateways; the feed counts as down when no gateway is connected.
import type { Db } from '../db';
import { sql } from '../db';
import type { FeedStatus } from '../live/events';
import { dayBounds, localDay } from '../time/market-time';

/** A gateway whose liveness beat is older than this is treated as gone since its last beat. */
export const defaultStaleMs = 30_000;

interface GatewayRow {
  gateway_id: string;
  received: number; stored: number; duplicates: number; conflicts: number; dead_lettered: number;
  last_message_at: Date | null;
  seen_at: Date;
}

export async function feedStatus(db: Db, tz: string, now: Date, staleMs = defaultStaleMs): Promise<FeedStatus> {
  const gateways = await db.query<GatewayRow>(sql`SELECT gateway_id, received, stored, duplicates, conflicts, dead_lettered, last_message_at, seen_at FROM feed_gateways`);
  const counts = { received: 0, stored: 0, duplicates: 0, conflicts: 0, dead_lettered: 0 };
  let lastMessage: Date | null = null;
  const seen = new Map<string, Date>();
  for (const g of gateways) {
    counts.received += g.received; counts.stored += g.stored; counts.duplicates += g.duplicates;
    counts.conflicts += g.conflicts; counts.dead_lettered += g.dead_lettered;
    if (g.last_message_at && (!lastMessage || g.last_message_at > lastMessage)) lastMessage = g.last_message_at;
    seen.set(g.gateway_id, g.seen_at);
  }
  const dayStart = dayBounds(localDay(now, tz), tz).start;
  // A week back is enough to find when the current connected stretch began.
  const lookback = new Date(dayStart.getTime() - 7 * 86_400_000);
  const [first] = await db.query<{ first: Date | null }>(sql`SELECT min(started_at) AS first FROM feed_intervals`);
  const rows = await db.query<{ gateway_id: string; started_at: Date; ended_at: Date | null }>(sql`
    SELECT gateway_id, started_at, ended_at FROM feed_intervals
    WHERE state = 'connected' AND (ended_at IS NULL OR ended_at > ${lookback}) AND started_at <= ${now}
    ORDER BY started_at`);
  const status: FeedStatus = { connected: false, since: null, last_message_at: lastMessage?.toISOString() ?? null, counts, disconnected_intervals: [] };
  if (!first?.first) return status;

  const blocks: { from: number; to: number; open: boolean }[] = [];
  for (const r of rows) {
    let to = now.getTime();
    let open = false;
    if (r.ended_at) to = Math.min(r.ended_at.getTime(), to);
    else {
      const beat = seen.get(r.gateway_id)?.getTime() ?? r.started_at.getTime();
      if (now.getTime() - beat > staleMs) to = Math.max(beat, r.started_at.getTime());
      else open = true;
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
