// The dashboard's one way to call the REST API: same-origin cookie, the API's error shape turned
// into an ApiFailure with the HTTP status (0 when the server cannot be reached).
import type { ApiBalance, ApiNotification, ApiOrder, ApiTrade, FeedStatus, PnlHourRow, PnlTotal, RecalledTrade } from '$shared/events';

export class ApiFailure extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface Me {
  username: string;
  role: 'admin' | 'trader' | 'analyst' | 'service';
  trader_id: string | null;
  desk: boolean;
}

export type PnlTotals = PnlTotal;

export interface PnlReport {
  trader_id: string;
  delivery_day: string;
  timezone: string;
  hours: PnlHourRow[];
  total: PnlTotals;
}

export interface DeskRow extends Partial<PnlTotals> {
  trader_id: string;
}

export interface DeskReport {
  delivery_day: string;
  traders: DeskRow[];
  total?: Partial<PnlTotals>;
}

/** One definition for server and web: the REST API's Trade; a deal the exchange recalled carries `recall`. */
export type Trade = ApiTrade & { recall?: RecalledTrade['recall'] };

export async function api<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set('accept', 'application/json');
  // Tells the server not to answer 401 with a Basic challenge (the browser would pop up a dialog).
  headers.set('x-requested-with', 'powerdesk-web');
  let body = init.body;
  if (init.json !== undefined) {
    headers.set('content-type', 'application/json');
    body = JSON.stringify(init.json);
  }
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers, body, credentials: 'same-origin' });
  } catch {
    throw new ApiFailure(0, 'the server cannot be reached; is it running?');
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const message = (parsed as { message?: string } | undefined)?.message ?? `${response.status} ${response.statusText || 'error'}`;
    throw new ApiFailure(response.status, message);
  }
  if (parsed === undefined) throw new ApiFailure(response.status, `${path}: the server's answer is not JSON`);
  return parsed as T;
}

/** GET /v1/session: who is signed in; without a session cookie `{signed_in: false}` (no 401). */
export type SessionAnswer = (Me & { signed_in: true }) | { signed_in: false };
export const getSession = () => api<SessionAnswer>('/v1/session');
export const signIn = (username: string, password: string) => api<Me>('/v1/session', { method: 'POST', json: { username, password } });
export const signOut = () => api<void>('/v1/session', { method: 'DELETE' });

export const getReport = (traderId: string, day: string) =>
  api<PnlReport>(`/v1/reports/pnl?${new URLSearchParams({ trader_id: traderId, delivery_day: day })}`);

export async function getDesk(day: string): Promise<DeskReport> {
  const raw = await api<DeskReport | DeskRow[] | { rows?: DeskRow[] }>(`/v1/reports/desk?${new URLSearchParams({ delivery_day: day })}`);
  // Accept the array forms too: the desk endpoint is young and the table only needs the rows.
  if (Array.isArray(raw)) return { delivery_day: day, traders: raw };
  const traders = (raw as DeskReport).traders ?? (raw as { rows?: DeskRow[] }).rows ?? [];
  return { delivery_day: day, traders, total: (raw as DeskReport).total };
}

export const getTrades = (traderId: string, day: string) =>
  api<Trade[]>(`/v1/trades?${new URLSearchParams({ trader_id: traderId, delivery_day: day })}`);

export const getFeedStatus = () => api<FeedStatus>('/v1/feed/status');

/** A nightly file compared with the live feed (GET /v1/reconciliations, branch importer). */
export interface Reconciliation {
  import_id: number;
  file_name: string;
  trading_day: string;
  computed_at: string;
  file_trades: number;
  feed_trades: number;
  matched: number;
  only_in_file: number;
  only_in_feed: number;
  different: number;
}

export const getReconciliations = (day: string) =>
  api<Reconciliation[]>(`/v1/reconciliations?${new URLSearchParams({ day, limit: '20' })}`);

// Trading: orders, the balance, positions and the inbox (server/orders, server/accounts).

export type Order = ApiOrder;
export type Balance = ApiBalance;
export type Notification = ApiNotification;

/** A position per delivery product (GET /v1/positions): prices in eurocent/MWh, money in EUR text. */
export interface Position {
  delivery_day: string;
  delivery_hour: number;
  delivery_period: string;
  delivery_start: string;
  delivery_end: string;
  bought_mw: number;
  sold_mw: number;
  net_mw: number;
  avg_buy_price: number | null;
  avg_sell_price: number | null;
  open_buy_mw: number;
  open_sell_mw: number;
  ref_price: number | null;
  realized_eur: string;
  mtm_eur: string | null;
  value_eur: string | null;
}

export interface NewOrder {
  client_order_id?: string;
  trader_id?: string;
  side: 'buy' | 'sell';
  type: 'limit' | 'market';
  time_in_force: 'gtc' | 'ioc' | 'fok';
  delivery_day: string;
  delivery_hour: number;
  delivery_period?: string;
  quantity: number;
  limit_price?: number;
}

const traderQuery = (traderId: string, extra: Record<string, string> = {}) => new URLSearchParams({ trader_id: traderId, ...extra });

export const getBalance = (traderId: string) => api<Balance>(`/v1/balance?${traderQuery(traderId)}`);
export const getOrders = (traderId: string, status: 'open' | 'closed' | 'all' = 'all', limit = 200) =>
  api<{ orders: Order[]; next_cursor: string | null }>(`/v1/orders?${traderQuery(traderId, { status, limit: String(limit) })}`);
export const placeOrder = (order: NewOrder) => api<Order>('/v1/orders', { method: 'POST', json: order });
export const cancelOrder = (id: string) => api<Order>(`/v1/orders/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
export const modifyOrder = (id: string, changes: { quantity?: number; limit_price?: number }) =>
  api<Order>(`/v1/orders/${encodeURIComponent(id)}`, { method: 'PATCH', json: changes });
export const getPositions = (traderId: string, day: string) => api<Position[]>(`/v1/positions?${traderQuery(traderId, { delivery_day: day })}`);
export const getNotifications = (traderId: string, limit = 50) =>
  api<{ notifications: Notification[]; unread: number; next_cursor: string | null }>(`/v1/notifications?${traderQuery(traderId, { limit: String(limit) })}`);
export const readNotification = (id: number) => api<Notification>(`/v1/notifications/${id}/read`, { method: 'POST' });
