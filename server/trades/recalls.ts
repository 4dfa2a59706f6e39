// Deal recalls: the exchange cancels a deal (a mistrade). The trade row stays, marked with when
// and why, and leaves PnL and reports from then on (pnl_hourly leaves out recalled rows). A
// recall of a deal not stored yet is kept and applied when the deal arrives (ingestTradesIn).
import type { Queryable } from '../db';
import { sql } from '../db';
import type { TradeSource } from './normalize';
import { pnlSumsChange } from './pnl-sums';
import { announce, type RecalledRow } from './store';

export interface RecallInput {
  id: string;
  reason: string;
  /** When the recall was received. */
  recalledAt: Date;
  seq?: number | null;
  gatewayId?: string;
}

/**
 * `recalled`: the stored trade is now marked; `pending`: no such trade yet, applied when it
 * arrives; `repeated`: this deal was recalled before (the first recall's reason and time stay).
 */
export type RecallStatus = 'recalled' | 'pending' | 'repeated';

export interface RecallOutcome {
  id: string;
  status: RecallStatus;
}

/** Records recalls inside the caller's transaction and announces the trades they took out. */
export async function recallDeals(tx: Queryable, recalls: readonly RecallInput[], source: TradeSource, tz: string): Promise<RecallOutcome[]> {
  if (!recalls.length) return [];
  const fresh = await tx.query<{ id: string }>(sql`
    INSERT INTO deal_recalls (id, reason, recalled_at, seq, gateway_id)
    SELECT * FROM unnest(${recalls.map((r) => r.id)}::text[], ${recalls.map((r) => r.reason)}::text[],
      ${recalls.map((r) => r.recalledAt.toISOString())}::timestamptz[], ${recalls.map((r) => r.seq ?? null)}::bigint[], ${recalls.map((r) => r.gatewayId ?? null)}::text[])
    ON CONFLICT (id) DO NOTHING
    RETURNING id`);
  const freshIds = fresh.map((r) => r.id);
  const marked = freshIds.length
    ? await tx.query<RecalledRow['row'] & { reason: string; recalled_at: Date }>(sql`
        WITH marked AS (
          UPDATE trades t SET recalled_at = r.recalled_at
          FROM deal_recalls r JOIN trade_keys k ON k.id = r.id
          WHERE r.id = ANY(${freshIds}::text[]) AND t.id = k.id AND t.delivery_start = k.delivery_start AND t.recalled_at IS NULL
          RETURNING t.id, t.trader_id, t.direction, t.price, t.quantity, t.delivery_day, t.delivery_start, t.delivery_end, t.execution_time, r.reason, t.recalled_at),
        sums AS (${pnlSumsChange(sql`marked`, -1)})
        SELECT * FROM marked`)
    : [];
  await announce(tx, source, [], tz, marked.map(({ reason, recalled_at, ...row }) => ({ row, reason, recalled_at })));
  const freshSet = new Set(freshIds);
  const markedSet = new Set(marked.map((m) => m.id));
  const seen = new Set<string>();
  return recalls.map((r) => {
    const first = !seen.has(r.id);
    seen.add(r.id);
    if (!first || !freshSet.has(r.id)) return { id: r.id, status: 'repeated' };
    return { id: r.id, status: markedSet.has(r.id) ? 'recalled' : 'pending' };
  });
}
