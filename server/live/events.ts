// The live protocol, defined once and imported by both the server's live hub and the web app:
// Socket.IO event names with their payload types, and the NOTIFY channels behind them.
// Keep this file free of runtime imports from the server (types only): the web app bundles it.
import type { ApiTrade, RecalledTrade } from '../trades/normalize';
import type { ApiOrder } from '../orders/model';
import type { ApiBalance, ApiNotification } from '../orders/events';

/** The Order of GET /v1/orders/{id}, the Balance of GET /v1/balance, an inbox entry (`order`, `balance`, `notification` events). */
export type { ApiOrder, ApiBalance, ApiNotification };

/**
 * The Trade of the REST API and of `deal` events (price in eurocent/MWh, local start hour, and
 * `delivery_period` for a product other than the plain hour: "08:15-08:30", "02-03B").
 */
export type { ApiTrade, RecalledTrade };

/**
 * One delivery product within an hour row: its own start, end, trades, MW and PnL (energy = MW x
 * the product's length), and `period`, the product in the exchange's notation: "08:15-08:30",
 * the plain hour "08-09", "02-03B".
 */
export type PnlProductRow = { period: string } & Pick<PnlHourRow, 'delivery_start' | 'delivery_end' | 'trades' | 'buy_mw' | 'sell_mw' | 'pnl_eur'>;

/** One hour row of the PnL report (GET /v1/reports/pnl hours[], and the live `pnl` event). */
export interface PnlHourRow {
  /** "08-09"; the repeated autumn hour carries its UTC offset: "02-03 (+02:00)". */
  label: string;
  /** UTC ISO-8601. */
  delivery_start: string;
  delivery_end: string;
  trades: number;
  buy_mw: number;
  sell_mw: number;
  /** Σ sell price·energy − Σ buy price·energy, EUR rounded to cents. */
  pnl_eur: number;
  /** buy_mw − sell_mw. */
  net_mw: number;
  /** EUR/MWh, energy-weighted; null when nothing was bought / sold. */
  vwap_buy: number | null;
  vwap_sell: number | null;
  /** Latest reference price of the hour, EUR/MWh; null when the provider has none. */
  ref_price: number | null;
  /** pnl_eur + (bought − sold energy) × ref_price; null without a reference price. */
  mtm_pnl_eur: number | null;
  /** Σ sell (price − ref)·energy + Σ buy (ref − price)·energy; null without a reference price. */
  vs_ref_eur: number | null;
  /**
   * Only on an hour that traded a product other than its plain hour (quarter hours): every
   * product of the hour, in delivery order, the plain hour among them.
   */
  products?: PnlProductRow[];
}

/**
 * The day's totals: sums of the hours (money summed exactly, then rounded), VWAP over the day,
 * ref_price always null (a day has no single reference price), mtm/vs_ref null when an hour with
 * trades has no reference price.
 */
export type PnlTotal = Omit<PnlHourRow, 'label' | 'delivery_start' | 'delivery_end' | 'products'>;

/** GET /v1/reports/pnl, and the snapshot a subscription starts with. */
export interface PnlReport {
  trader_id: string;
  delivery_day: string;
  /** The market time zone the day and labels are in (MARKET_TZ). */
  timezone: string;
  /** Every hour of the local day: 24, or 23/25 on DST change days. */
  hours: PnlHourRow[];
  total: PnlTotal;
}

/** GET /v1/reports/desk: every trader's totals for a day. */
export interface DeskReport {
  delivery_day: string;
  timezone: string;
  traders: (PnlTotal & { trader_id: string })[];
  total: PnlTotal;
}

/** Exchange gateway state, as GET /v1/feed/status returns it and the `feed` event pushes it. */
export interface FeedStatus {
  connected: boolean;
  /** Since when connected (or disconnected), ISO-8601 UTC. */
  since: string | null;
  last_message_at: string | null;
  /** `recalls`: deals the exchange recalled; `ignored`: frames whose seq was already handled (replays, redeliveries). */
  counts: { received: number; stored: number; duplicates: number; conflicts: number; dead_lettered: number; recalls: number; ignored: number };
  /** Today's disconnected intervals (local market day), ISO-8601 UTC; `to` null while still down. */
  disconnected_intervals: { from: string; to: string | null }[];
  /** The exchange session per member (protocol version 2); empty before a first gateway ran. */
  sessions: SessionStatus[];
}

export interface SessionStatus {
  member: string;
  /** Highest contiguous seq whose messages are committed: where every reconnect resumes. */
  committed_seq: number;
  /** Highest seq seen from the exchange. */
  exchange_seq: number;
  /** Times the exchange restarted its numbering below ours. */
  resets: number;
  updated_at: string;
  /** Today's gaps and every one still open, oldest first: filled when replayed and committed, lost when the exchange could not replay them. */
  gaps: { from_seq: number; to_seq: number; detected_at: string; filled_at: string | null; lost_at: string | null }[];
}

export interface Subscription {
  trader_id: string;
  delivery_day: string;
}

export type Ack = { ok: true } | { ok: false; error: string };

/** The subscribe ack carries the current report: the snapshot that live `pnl` rows then update. */
export type SubscribeAck = { ok: true; report: PnlReport } | { ok: false; error: string };

export interface PnlUpdate {
  trader_id: string;
  delivery_day: string;
  hour: PnlHourRow;
  total: PnlTotal;
}

export interface ServerToClientEvents {
  /** A new trade of a subscribed trader and day (the Trade of the REST API). */
  deal: (trade: ApiTrade & { trader_id: string }) => void;
  /** The updated hour row after a trade changed it (with the day's new total). */
  pnl: (update: PnlUpdate) => void;
  /** A deal of a subscribed trader and day that the exchange recalled (show it struck through; its hour's `pnl` follows). */
  recall: (trade: RecalledTrade) => void;
  /** Gateway status changes. */
  feed: (status: FeedStatus) => void;
  /** An order of the trader (her sockets and the desk's) after every change. */
  order: (order: ApiOrder) => void;
  /** The trader's balance after every change. */
  balance: (balance: ApiBalance) => void;
  /** Something the trader is told (also kept for the inbox, GET /v1/notifications). */
  notification: (notification: ApiNotification) => void;
  /** A request refused without its own ack reaching the point (e.g. the subscribe rate limit), naming the limit. */
  error: (error: { event: string; message: string }) => void;
  /** Sent just before the server disconnects the socket: its session was signed out, or its user disabled. */
  session_ended: (info: { reason: 'signed out' | 'disabled' }) => void;
}

export interface ClientToServerEvents {
  /**
   * Start receiving `deal` and `pnl` of one trader and day. Emit it again after a reconnect
   * whose state was not recovered (`socket.recovered === false`): the ack's report is the fresh
   * snapshot to replace what the client shows.
   */
  subscribe: (subscription: Subscription, ack: (result: SubscribeAck) => void) => void;
  unsubscribe: (subscription: Subscription, ack: (result: Ack) => void) => void;
}

/** NOTIFY channels: trades_stored is sent by server/trades/store.ts (payload TradesStoredEvent). */
export const channels = {
  tradesStored: 'trades_stored',
  feedStatus: 'feed_status',
  /** Sent by server/orders/events.ts (payload: a JSON array of TradingEvent). */
  tradingEvents: 'trading_events',
  /** Sent by server/market-data when new reference prices are stored (payload: JSON array of their delivery days). */
  referencePricesStored: 'reference_prices_stored',
  /** Sent by server/auth/users.ts when a session ends or a user is disabled (payload: SessionsEndedEvent). */
  sessionsEnded: 'sessions_ended',
} as const;

/** A user's sessions that no longer authenticate: one (sign-out, by its token hash) or all (disabled). */
export interface SessionsEndedEvent {
  user_id: number;
  /** The signed-out session's token hash; absent: every session and credential of the user. */
  session?: string;
  reason: 'signed out' | 'disabled';
}
