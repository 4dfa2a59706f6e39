// The live protocol, defined once and imported by both the server's live hub and the web app:
// Socket.IO event names with their payload types, and the NOTIFY channels behind them.
import type { ApiTrade } from '../trades/normalize';

/** One hour row of the PnL report as pushed live (same fields as GET /v1/reports/pnl hours[]). */
export interface PnlHourRow {
  label: string;
  delivery_start: string;
  delivery_end: string;
  trades: number;
  buy_mw: number;
  sell_mw: number;
  pnl_eur: number;
  net_mw: number;
  vwap_buy: number | null;
  vwap_sell: number | null;
  ref_price: number | null;
  mtm_pnl_eur: number | null;
  vs_ref_eur: number | null;
}

/** Exchange gateway state, as GET /v1/feed/status returns it and the `feed` event pushes it. */
export interface FeedStatus {
  connected: boolean;
  /** Since when connected (or disconnected), ISO-8601 UTC. */
  since: string | null;
  last_message_at: string | null;
  counts: { received: number; stored: number; duplicates: number; conflicts: number; dead_lettered: number };
  /** Today's disconnected intervals (local market day), ISO-8601 UTC; `to` null while still down. */
  disconnected_intervals: { from: string; to: string | null }[];
}

export interface Subscription {
  trader_id: string;
  delivery_day: string;
}

export type Ack = { ok: true } | { ok: false; error: string };

export interface ServerToClientEvents {
  /** A new trade of a subscribed trader and day (the Trade of the REST API). */
  deal: (trade: ApiTrade & { trader_id: string }) => void;
  /** The updated hour row after a trade changed it. */
  pnl: (update: { trader_id: string; delivery_day: string; hour: PnlHourRow; total: Omit<PnlHourRow, 'label' | 'delivery_start' | 'delivery_end'> }) => void;
  /** Gateway status changes. */
  feed: (status: FeedStatus) => void;
}

export interface ClientToServerEvents {
  subscribe: (subscription: Subscription, ack: (result: Ack) => void) => void;
  unsubscribe: (subscription: Subscription, ack: (result: Ack) => void) => void;
}

/** NOTIFY channels: trades_stored is sent by server/trades/store.ts (payload TradesStoredEvent). */
export const channels = {
  tradesStored: 'trades_stored',
  feedStatus: 'feed_status',
} as const;
