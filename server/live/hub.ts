// The live hub: the only code that talks to Socket.IO. It authenticates sockets like the REST
// API, keeps rooms per user and per trader+day, and turns the database's NOTIFY events
// (trades_stored, feed_status) into `deal`, `recall`, `pnl` and `feed` pushes. Every server process runs
// one hub and hears every NOTIFY, so a deal stored by any process reaches clients of all.
import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { z } from 'zod';
import { readCookie, sessionCookie } from '../auth/authenticator';
import { canSeeDesk, hashToken, type User } from '../auth/users';
import type { AppDeps } from '../http/context';
import { crossSite } from '../http/csrf';
import { formatIssues } from '../http/errors';
import { Counter } from '../http/metrics';
import type { PnlFreshness } from '../reports/freshness';
import { touchedSlots } from '../reports/freshness';
import { pnlReport } from '../reports/pnl';
import { dayString, identifier } from '../trades/schema';
import type { ApiTrade, RecalledTrade } from '../trades/normalize';
import type { TouchedHour, TradesStoredEvent } from '../trades/store';
import type { TradingEvent } from '../orders/events';
import { channels, type ClientToServerEvents, type FeedStatus, type ServerToClientEvents, type SessionsEndedEvent, type Subscription } from './events';

export interface SocketData {
  user: User;
  /** Hash of the session cookie the socket was authenticated with (absent: HTTP Basic). */
  session?: string;
  /** Token bucket of `subscribe`. */
  tokens: number;
  refilledAt: number;
}

type HubServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type HubSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export const SubscriptionSchema = z.strictObject({
  trader_id: identifier('trader id'),
  delivery_day: dayString,
});

/** Trader+day rooms one connection may be in (a desk screen shows a few; more is a runaway client). */
export const maxSubscriptions = 100;

/**
 * `subscribe` per connection: a burst of up to maxSubscriptions (a client re-subscribing to
 * everything after a lost session), then this many a second.
 */
export const subscribeBurst = maxSubscriptions;
export const subscribesPerSecond = 5;

export const traderRoom = (traderId: string, day: string) => `trader:${traderId}:${day}`;
export const userRoom = (user: Pick<User, 'id'>) => `user:${user.id}`;
/** Every socket of a trader_id's users, and every desk user's (orders, balances, notifications). */
export const accountRoom = (traderId: string) => `account:${traderId}`;
export const deskRoom = 'desk';

export interface LiveHubOptions {
  /** How long a dropped client's missed events are kept for connection-state recovery. */
  recoveryMs?: number;
}

/** Least time between two rounds of PnL report queries for pushed `pnl` rows. */
export const pnlIntervalMs = 250;

export class LiveHub {
  readonly io: HubServer;
  private unlisteners: (() => Promise<void>)[] = [];
  private queue: TouchedHour[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private flushScheduled = false;
  private lastFlushAt = -Infinity;
  private lastFlushMs = 0;
  /** Set by close(): a flush scheduled just before must not query a database being closed. */
  private closed = false;
  /** Rooms whose members dropped recently: keep emitting so recovery can replay. */
  private recentlyLeft = new Map<string, number>();
  private lastFeed?: FeedStatus;
  private readonly recoveryMs: number;
  private readonly events: Counter;
  private readonly sockets: Counter;
  /** Whether a change arrived while a PnL round was pending or running: a burst, coalesce. */
  private busy = false;
  private flushRunning = false;
  /** When a change goes out without delay, if none arrives while a round runs (performance.now() time). */
  get quietAt(): number {
    return this.lastFlushAt + 2 * this.lastFlushMs;
  }

  /** PnL rounds scheduled, those scheduled after a quiet spell (leading edge: on the next tick), and the last deliberate delay. */
  readonly stats = { rounds: 0, leading: 0, lastWaitMs: 0 };

  constructor(httpServer: HttpServer, private deps: AppDeps, private freshness?: PnlFreshness, options: LiveHubOptions = {}) {
    this.recoveryMs = options.recoveryMs ?? 2 * 60_000;
    this.io = new Server(httpServer, {
      serveClient: false,
      // Missed packets are replayed to a client that comes back within recoveryMs; the
      // handshake is authenticated again all the same (a disabled user is not let back in).
      connectionStateRecovery: { maxDisconnectionDuration: this.recoveryMs, skipMiddlewares: false },
    });
    this.events = deps.metrics.register(new Counter('powerdesk_live_events_total', 'Events pushed by the live hub, by event'));
    this.sockets = deps.metrics.register(new Counter('powerdesk_live_sockets', 'Connected Socket.IO clients in this process', 'gauge'));
    this.io.use((socket, next) => {
      const { headers, address } = socket.handshake;
      // Another site's page may not open a live stream on the browser's cookie or remembered
      // credentials (a WebSocket is not held to the same-origin policy): as for writes.
      const header = (name: string) => { const v = headers[name]; return Array.isArray(v) ? v.join(',') : v; };
      const refused = crossSite({ origin: header('origin'), host: header('host'), forwardedHost: header('x-forwarded-host'), fetchSite: header('sec-fetch-site') });
      if (refused) {
        const message = `cross-site connection refused: ${refused}`;
        return next(Object.assign(new Error(message), { data: { status_code: 403, message } }));
      }
      deps.auth.authenticate({ authorization: headers.authorization, cookie: headers.cookie }, address).then((result) => {
        if (!result.ok) return next(Object.assign(new Error(result.message), { data: { status_code: result.status, message: result.message } }));
        socket.data.user = result.user;
        socket.data.tokens = subscribeBurst;
        socket.data.refilledAt = performance.now();
        if (!headers.authorization) {
          try {
            const token = readCookie(headers.cookie ?? '', sessionCookie);
            if (token) socket.data.session = hashToken(token);
          } catch {
            // authenticated, so the cookie was readable; nothing to remember otherwise
          }
        }
        next();
      }, (error: Error) => next(error));
    });
    this.io.on('connection', (socket) => this.onConnection(socket));
  }

  async start(): Promise<void> {
    this.unlisteners.push(await this.deps.db.listen(channels.tradesStored, (payload) => this.onTradesStored(payload)));
    this.unlisteners.push(await this.deps.db.listen(channels.feedStatus, (payload) => this.onFeedStatus(payload)));
    this.unlisteners.push(await this.deps.db.listen(channels.tradingEvents, (payload) => this.onTradingEvents(payload)));
    this.unlisteners.push(await this.deps.db.listen(channels.sessionsEnded, (payload) => this.onSessionsEnded(payload)));
  }

  /** Connected sockets in this process (a socket is removed before its 'disconnect' event). */
  private countSockets(): void {
    this.sockets.set({}, this.io.of('/').sockets.size);
  }

  /** Takes a `subscribe` token; false when the connection has used its burst and rate. */
  private takeToken(socket: HubSocket): boolean {
    const now = performance.now();
    const data = socket.data;
    data.tokens = Math.min(subscribeBurst, data.tokens + ((now - data.refilledAt) / 1000) * subscribesPerSecond);
    data.refilledAt = now;
    if (data.tokens < 1) return false;
    data.tokens -= 1;
    return true;
  }

  /** The report a subscription starts with: from the shared cache (one computation per trader-day). */
  private report(traderId: string, day: string, urgent = false) {
    return this.deps.reports ? this.deps.reports.get(traderId, day, { urgent }) : pnlReport(this.deps.db, traderId, day, this.deps.tz);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue = [];
    for (const unlisten of this.unlisteners) await unlisten().catch(() => {});
    this.unlisteners = [];
    await this.flushing;
    this.io.disconnectSockets(true);
    await new Promise<void>((resolve) => { void this.io.close(() => resolve()); });
  }

  private onConnection(socket: HubSocket): void {
    const user = socket.data.user;
    socket.join(userRoom(user));
    if (user.trader_id) socket.join(accountRoom(user.trader_id));
    if (canSeeDesk(user)) socket.join(deskRoom);
    this.countSockets();
    if (this.lastFeed) socket.emit('feed', this.lastFeed);
    // 'disconnecting': the rooms are still known (on 'disconnect' they are gone).
    socket.on('disconnecting', () => {
      const now = this.deps.clock.now().getTime();
      if (this.recentlyLeft.size > 10_000) {
        for (const [room, left] of this.recentlyLeft) if (left + this.recoveryMs < now) this.recentlyLeft.delete(room);
      }
      for (const room of socket.rooms) this.recentlyLeft.set(room, now);
    });
    socket.on('disconnect', () => this.countSockets());
    socket.on('subscribe', (input, ack) => {
      if (typeof ack !== 'function') return;
      if (!this.takeToken(socket)) {
        const error = `subscribe: rate limit of ${subscribeBurst} at once, then ${subscribesPerSecond} a second per connection; try again later`;
        socket.emit('error', { event: 'subscribe', message: error });
        return ack({ ok: false, error });
      }
      const checked = this.checkSubscription(user, input);
      if (!checked.ok) return ack(checked);
      const { trader_id, delivery_day } = checked.value;
      // Join before reading the snapshot: a deal committed in between is then pushed too (pnl
      // rows are absolute values, so seeing one twice is harmless; missing one is not).
      const room = traderRoom(trader_id, delivery_day);
      if (!socket.rooms.has(room) && subscriptionsOf(socket) >= maxSubscriptions) {
        return ack({ ok: false, error: `at most ${maxSubscriptions} subscriptions per connection: unsubscribe from another first` });
      }
      socket.join(room);
      const snapshot = async () => {
        await this.freshness?.settled();
        return this.report(trader_id, delivery_day);
      };
      snapshot().then((report) => ack({ ok: true, report }), (error: Error) => {
        socket.leave(room);
        this.deps.log.error('live: report for a subscription failed', { error });
        ack({ ok: false, error: 'internal error; the server log has the details' });
      });
    });
    socket.on('unsubscribe', (input, ack) => {
      const checked = this.checkSubscription(user, input);
      if (checked.ok) socket.leave(traderRoom(checked.value.trader_id, checked.value.delivery_day));
      if (typeof ack === 'function') ack(checked.ok ? { ok: true } : checked);
    });
  }

  private checkSubscription(user: User, input: unknown): { ok: true; value: Subscription } | { ok: false; error: string } {
    const parsed = SubscriptionSchema.safeParse(input, { reportInput: true });
    if (!parsed.success) return { ok: false, error: formatIssues(parsed.error.issues) };
    if (!canSeeDesk(user) && parsed.data.trader_id !== user.trader_id) {
      return { ok: false, error: `trader_id: you may only subscribe to your own trader_id (${user.trader_id})` };
    }
    return { ok: true, value: parsed.data };
  }

  /** A room with members here, or whose members may come back and recover. */
  private wanted(room: string): boolean {
    if (this.io.sockets.adapter.rooms.has(room)) return true;
    const left = this.recentlyLeft.get(room);
    if (left === undefined) return false;
    if (left + this.recoveryMs < this.deps.clock.now().getTime()) {
      this.recentlyLeft.delete(room);
      return false;
    }
    return true;
  }

  private onTradesStored(payload: string): void {
    let event: TradesStoredEvent;
    try {
      event = JSON.parse(payload) as TradesStoredEvent;
    } catch (error) {
      this.deps.log.warn('live: unreadable trades_stored payload', { error });
      return;
    }
    // Deals go out at once; PnL rows after this tick's deals are coalesced. A bulk commit comes
    // as the hours it touched: its subscribers get the PnL rows, not thousands of tape lines. A
    // recalled deal is struck through on the tape, and its hour's PnL row follows without it.
    const tape = (event: 'deal' | 'recall', trades: readonly (ApiTrade | RecalledTrade)[]) => {
      for (const trade of trades) {
        const room = traderRoom(trade.trader_id, trade.delivery_day);
        if (!this.wanted(room)) continue;
        this.io.to(room).emit(event, trade as RecalledTrade);
        this.events.inc({ event });
        this.queue.push(trade);
      }
    };
    tape('deal', event.trades ?? []);
    for (const hour of event.touched ?? []) {
      if (this.wanted(traderRoom(hour.trader_id, hour.delivery_day))) this.queue.push(hour);
    }
    tape('recall', event.recalled ?? []);
    if (!this.queue.length) return;
    if (this.flushScheduled || this.flushRunning) this.busy = true;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Leading edge: the first change after a quiet spell (no change arrived while the last
      // round was pending or running, and twice that round's cost has passed since it started)
      // goes out on the next tick. In a burst, rounds are spaced by at least pnlIntervalMs. Either
      // way a round waits for twice the cost of the one before (a trader with many deals today),
      // so that reports take at most about a third of the database and never crowd out the
      // ingestion they report on (one database connection when embedded), even when changes
      // come just after each round ends. Deals above are not delayed.
      const spacing = this.busy ? Math.max(pnlIntervalMs, 2 * this.lastFlushMs) : 2 * this.lastFlushMs;
      const wait = Math.max(0, this.lastFlushAt + spacing - performance.now());
      this.stats.rounds++;
      if (!this.busy) this.stats.leading++;
      this.stats.lastWaitMs = wait;
      this.busy = false;
      const run = () => {
        if (this.closed) return;
        // Scheduled until it starts: changes meanwhile join this round, not another behind it.
        this.flushing = this.flushing
          .then(async () => {
            this.flushScheduled = false;
            this.busy = false; // what arrives from now on is judged against this round
            this.flushRunning = true;
            this.lastFlushAt = performance.now();
            try {
              await this.flush();
            } finally {
              this.flushRunning = false;
              this.lastFlushMs = performance.now() - this.lastFlushAt;
            }
          })
          .catch((error: Error) => this.deps.log.error('live: pnl update failed', { error }));
      };
      if (wait === 0) setImmediate(run);
      else setTimeout(run, wait);
    }
  }

  /** Each touched trader/day once: one report query, then its touched hours and the new total. */
  private async flush(): Promise<void> {
    const trades = this.queue;
    this.queue = [];
    if (!trades.length || this.closed) return;
    await this.freshness?.settled();
    const touched = new Map<string, { trader_id: string; delivery_day: string; slots: Set<number> }>();
    for (const trade of trades) {
      const key = traderRoom(trade.trader_id, trade.delivery_day);
      const entry = touched.get(key) ?? { trader_id: trade.trader_id, delivery_day: trade.delivery_day, slots: new Set<number>() };
      for (const slot of touchedSlots(trade, this.deps.tz)) entry.slots.add(slot.index);
      touched.set(key, entry);
    }
    for (const [room, { trader_id, delivery_day, slots }] of touched) {
      const report = await this.report(trader_id, delivery_day, true);
      for (const index of [...slots].sort((a, b) => a - b)) {
        this.io.to(room).emit('pnl', { trader_id, delivery_day, hour: report.hours[index]!, total: report.total });
        this.events.inc({ event: 'pnl' });
      }
    }
  }

  /** Orders, balances and notifications: to the trader's sockets and the desk. */
  private onTradingEvents(payload: string): void {
    let events: TradingEvent[];
    try {
      events = JSON.parse(payload) as TradingEvent[];
      if (!Array.isArray(events)) throw new Error('not an array of trading events');
    } catch (error) {
      this.deps.log.warn('live: unreadable trading_events payload', { error });
      return;
    }
    for (const e of events) {
      const to = this.io.to([accountRoom(e.trader_id), deskRoom]);
      if (e.type === 'order') to.emit('order', e.order);
      else if (e.type === 'balance') to.emit('balance', e.balance);
      else if (e.type === 'notification') to.emit('notification', e.notification);
      else continue;
      this.events.inc({ event: e.type });
    }
  }

  /** Sign-out ends the streams of that session; disabling ends every stream and cached credential of the user. */
  private onSessionsEnded(payload: string): void {
    let event: SessionsEndedEvent;
    try {
      event = JSON.parse(payload) as SessionsEndedEvent;
      if (typeof event?.user_id !== 'number') throw new Error('no user_id');
    } catch (error) {
      this.deps.log.warn('live: unreadable sessions_ended payload', { error });
      return;
    }
    if (!event.session) this.deps.auth.forgetUser(event.user_id);
    for (const socket of this.io.of('/').sockets.values()) {
      if (socket.data.user?.id !== event.user_id) continue;
      if (event.session && socket.data.session !== event.session) continue;
      socket.emit('session_ended', { reason: event.reason });
      socket.disconnect(true);
    }
  }

  private onFeedStatus(payload: string): void {
    let status: FeedStatus;
    try {
      status = JSON.parse(payload) as FeedStatus;
      if (typeof status !== 'object' || status === null || typeof status.connected !== 'boolean') throw new Error('not a FeedStatus');
    } catch (error) {
      this.deps.log.warn('live: unreadable feed_status payload', { error });
      return;
    }
    this.lastFeed = status;
    this.io.emit('feed', status);
    this.events.inc({ event: 'feed' });
  }
}

/** Trader+day rooms of a socket (its own id and user room are not subscriptions). */
function subscriptionsOf(socket: HubSocket): number {
  let n = 0;
  for (const room of socket.rooms) if (room.startsWith('trader:')) n++;
  return n;
}

export async function startLiveHub(httpServer: HttpServer, deps: AppDeps, freshness?: PnlFreshness, options?: LiveHubOptions): Promise<LiveHub> {
  const hub = new LiveHub(httpServer, deps, freshness, options);
  await hub.start();
  return hub;
}
