// The trader's live trading state: balance, orders (open ones and today's fills), positions of the
// shown day, the inbox and its toasts. Loaded over REST for one trader, then moved by the
// socket's `order`, `balance` and `notification` events (the desk's sockets get every trader's:
// only the followed trader's are kept).
import { ApiFailure, getBalance, getNotifications, getOrders, getPositions, readNotification, type Balance, type Notification, type Order, type Position } from './api';
import { todayIn } from './format';
import type { LiveSocket } from './live';

const openStatuses = new Set(['pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace']);

export const isOpenOrder = (o: Pick<Order, 'status'>) => openStatuses.has(o.status);

export interface Fill {
  trade_id: string;
  order: Order;
  price: number;
  quantity: number;
  at: string;
}

export interface Toast {
  key: number;
  notification: Notification;
}

export class TradingState {
  traderId = $state<string | null>(null);
  day = $state<string | null>(null);
  balance = $state<Balance | null>(null);
  orders = $state<Order[]>([]);
  positions = $state<Position[]>([]);
  notifications = $state<Notification[]>([]);
  unread = $state(0);
  toasts = $state<Toast[]>([]);
  error = $state<string | null>(null);
  /** The balance moved a moment ago (its figures flash). */
  balanceFresh = $state(false);

  readonly open = $derived(this.orders.filter(isOpenOrder));
  /** Today's fills (market time), latest first. */
  readonly fills = $derived(this.fillsOn(todayIn(this.timezone)));

  private loadSeq = 0;
  private positionsTimer: ReturnType<typeof setTimeout> | undefined;
  private toastKey = 0;

  constructor(readonly timezone = 'Europe/Berlin', readonly toastMs = 8000) {}

  fillsOn(localDay: string): Fill[] {
    const out: Fill[] = [];
    for (const order of this.orders) for (const f of order.fills) if (todayIn(this.timezone, new Date(f.at)) === localDay) out.push({ trade_id: f.trade_id, order, price: f.price, quantity: f.quantity, at: f.at });
    return out.sort((a, b) => b.at.localeCompare(a.at));
  }

  /** Follows one trader (and her positions of one delivery day): everything fetched afresh. */
  async load(traderId: string, day: string): Promise<void> {
    const seq = ++this.loadSeq;
    if (this.traderId !== traderId) {
      this.balance = null;
      this.orders = [];
      this.notifications = [];
      this.unread = 0;
      this.toasts = [];
    }
    this.traderId = traderId;
    this.day = day;
    try {
      const [balance, orders, positions, inbox] = await Promise.all([getBalance(traderId), getOrders(traderId), getPositions(traderId, day), getNotifications(traderId)]);
      if (seq !== this.loadSeq) return;
      this.balance = balance;
      this.orders = orders.orders;
      this.positions = positions;
      this.notifications = inbox.notifications;
      this.unread = inbox.unread;
      this.error = null;
    } catch (error) {
      if (seq !== this.loadSeq) return;
      if (error instanceof ApiFailure && error.status === 401) throw error;
      this.error = (error as Error).message;
    }
  }

  clear(): void {
    this.loadSeq++;
    this.traderId = null;
    this.balance = null;
    this.orders = [];
    this.positions = [];
    this.notifications = [];
    this.unread = 0;
    this.toasts = [];
  }

  /** The socket's trading events move this state. */
  attach(socket: LiveSocket): void {
    socket.on('order', (order) => this.applyOrder(order));
    socket.on('balance', (balance) => this.applyBalance(balance));
    socket.on('notification', (n) => this.applyNotification(n));
    // A trade of the followed trader (feed, file, fill) moves her positions.
    socket.on('pnl', (update) => { if (update.trader_id === this.traderId && update.delivery_day === this.day) this.refreshPositionsSoon(); });
  }

  applyOrder(order: Order): void {
    if (order.trader_id !== this.traderId) return;
    const i = this.orders.findIndex((o) => o.id === order.id);
    if (i < 0) {
      this.orders = [order, ...this.orders];
    } else {
      const old = this.orders[i]!;
      // Events of one order can overtake each other (a REST answer and a push): the newer wins.
      if (old.updated_at > order.updated_at) return;
      const next = this.orders.slice();
      next[i] = order;
      this.orders = next;
      if (order.fills.length === old.fills.length && order.filled_quantity === old.filled_quantity) return;
    }
    if (order.fills.length || order.delivery_day === this.day) this.refreshPositionsSoon();
  }

  applyBalance(balance: Balance): void {
    if (balance.trader_id !== this.traderId) return;
    if (this.balance && this.balance.updated_at > balance.updated_at) return;
    this.balance = balance;
    this.balanceFresh = false;
    requestAnimationFrame(() => {
      this.balanceFresh = true;
      setTimeout(() => (this.balanceFresh = false), 1600);
    });
  }

  applyNotification(n: Notification): void {
    if (n.trader_id !== this.traderId || this.notifications.some((x) => x.id === n.id)) return;
    this.notifications = [n, ...this.notifications].slice(0, 200);
    if (!n.read) this.unread += 1;
    const key = ++this.toastKey;
    this.toasts = [...this.toasts, { key, notification: n }].slice(-4);
    setTimeout(() => this.dismiss(key), this.toastMs);
  }

  dismiss(key: number): void {
    this.toasts = this.toasts.filter((t) => t.key !== key);
  }

  async markRead(id: number): Promise<void> {
    const read = await readNotification(id);
    const was = this.notifications.find((n) => n.id === id);
    this.notifications = this.notifications.map((n) => (n.id === id ? { ...n, read: true } : n));
    if (was && !was.read) this.unread = Math.max(0, this.unread - 1);
    void read;
  }

  async markAllRead(): Promise<void> {
    for (const n of this.notifications.filter((x) => !x.read)) await this.markRead(n.id);
  }

  /** Positions again, at most every 300 ms however many events arrive. */
  refreshPositionsSoon(): void {
    if (this.positionsTimer) return;
    this.positionsTimer = setTimeout(async () => {
      this.positionsTimer = undefined;
      const { traderId, day } = this;
      if (!traderId || !day) return;
      try {
        const positions = await getPositions(traderId, day);
        if (traderId === this.traderId && day === this.day) this.positions = positions;
      } catch (error) {
        this.error = (error as Error).message;
      }
    }, 300);
  }
}
