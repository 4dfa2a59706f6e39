// The exchange gateway: one websocket client that keeps the connection alive (heartbeat,
// reconnect with capped exponential backoff and jitter), records every connected and
// disconnected interval, and ingests deal confirmations in micro-batches, at least once and
// idempotently on the deal id. Bad frames become dead letters; database errors are retried.
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import type { Clock } from '../clock';
import { systemClock } from '../clock';
import type { Db } from '../db';
import { sql } from '../db';
import { Counter, type MetricsRegistry } from '../http/metrics';
import { channels, type FeedStatus } from '../live/events';
import { createLogger, type Logger } from '../log';
import type { TradeRow } from '../trades/normalize';
import { fetchByIds, ingestTrades, type IngestOutcome } from '../trades/store';
import { defaultGateClosureMinutes } from '../time/market-time';
import { parseFeedMessage } from './message';
import { defaultStaleMs, feedStatus } from './status';

export interface GatewayOptions {
  db: Db;
  url: string;
  tz: string;
  clock?: Clock;
  log?: Logger;
  metrics?: MetricsRegistry;
  /** Names this gateway in the database; default host:pid:random. */
  gatewayId?: string;
  /** Ping every this many ms; no pong for two intervals terminates the connection. */
  heartbeatMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Flush a micro-batch at this many deals ... */
  batchMax?: number;
  /** ... or this many ms after its first deal. */
  batchMs?: number;
  /** Stop reading the socket while this many messages wait for the database. */
  maxPending?: number;
  /** Publish count changes on the feed_status channel at most this often (state changes at once). */
  statusNotifyMs?: number;
  staleMs?: number;
  /** Source of jitter (tests make it deterministic). */
  random?: () => number;
  /** Trading of a product closes this many minutes before its delivery starts; later deals are flagged. */
  gateClosureMinutes?: number;
}

export type FeedCounts = FeedStatus['counts'];

interface Item {
  raw: string;
  receivedAt: Date;
  row?: TradeRow;
  reason?: string;
}

interface Batch {
  items: Item[];
  outcomes?: IngestOutcome[];
  sideWritten?: boolean;
}

const feedMetrics: WeakMap<MetricsRegistry, { messages: Counter; connected: Counter; afterGateClosure: Counter }> = new WeakMap();

export class FeedGateway extends EventEmitter {
  readonly gatewayId: string;
  readonly counts: FeedCounts = { received: 0, stored: 0, duplicates: 0, conflicts: 0, dead_lettered: 0 };
  connected = false;
  since: Date | null = null;
  lastMessageAt: Date | null = null;
  /** Connections opened so far (tests and logs). */
  connections = 0;
  /** Times reading was paused because too much waited for the database. */
  pauses = 0;

  private readonly db: Db;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly o: Required<Omit<GatewayOptions, 'db' | 'clock' | 'log' | 'metrics' | 'gatewayId'>>;
  private readonly messages?: Counter;
  private readonly metrics?: MetricsRegistry;
  private readonly connectedGauge?: Counter;
  private readonly afterGateClosure?: Counter;
  private ws?: WebSocket;
  private attempt = 0;
  private closing = false;
  private reconnectTimer?: NodeJS.Timeout;
  private heartbeatTimer?: NodeJS.Timeout;
  private beatTimer?: NodeJS.Timeout;
  private flushTimer?: NodeJS.Timeout;
  private ponged = true;
  private missed = 0;
  private pending: Item[] = [];
  private current?: Batch;
  private flushing?: Promise<void>;
  private paused = false;
  private records: Promise<void> = Promise.resolve();
  private lastStatusAt = 0;
  private statusTimer?: NodeJS.Timeout;
  private wake?: () => void;
  private gaveUp = false;

  constructor(options: GatewayOptions) {
    super();
    this.db = options.db;
    this.clock = options.clock ?? systemClock;
    this.log = (options.log ?? createLogger('silent')).child({ part: 'feed' });
    this.gatewayId = options.gatewayId ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.o = {
      url: options.url, tz: options.tz,
      heartbeatMs: options.heartbeatMs ?? 10_000,
      backoffMinMs: options.backoffMinMs ?? 500,
      backoffMaxMs: options.backoffMaxMs ?? 30_000,
      batchMax: options.batchMax ?? 1000,
      batchMs: options.batchMs ?? 20,
      maxPending: options.maxPending ?? 50_000,
      statusNotifyMs: options.statusNotifyMs ?? 1000,
      staleMs: options.staleMs ?? Math.max(defaultStaleMs, 3 * (options.heartbeatMs ?? 10_000)),
      random: options.random ?? Math.random,
      gateClosureMinutes: options.gateClosureMinutes ?? defaultGateClosureMinutes,
    };
    if (options.metrics) {
      let m = feedMetrics.get(options.metrics);
      if (!m) {
        m = {
          messages: options.metrics.register(new Counter('powerdesk_feed_messages_total', 'Exchange feed messages by outcome (stored, duplicate, conflict, dead_letter)')),
          connected: options.metrics.register(new Counter('powerdesk_feed_connected', 'Whether this process\'s gateway is connected to the exchange (1) or not (0)', 'gauge')),
          afterGateClosure: options.metrics.register(new Counter('powerdesk_feed_after_gate_closure_total', 'Deals stored from the exchange feed that were executed after their product\'s gate closure')),
        };
        feedMetrics.set(options.metrics, m);
      }
      this.messages = m.messages;
      this.connectedGauge = m.connected;
      this.afterGateClosure = m.afterGateClosure;
      this.metrics = options.metrics;
    }
    this.on('error', () => {}); // an EventEmitter 'error' without a listener would throw
  }

  /** Registers the gateway in the database and starts connecting; resolves once registered. */
  async start(): Promise<void> {
    const now = this.clock.now();
    const [existing] = await this.db.query<FeedCounts & { last_message_at: Date | null }>(sql`
      INSERT INTO feed_gateways (gateway_id, url, seen_at) VALUES (${this.gatewayId}, ${this.o.url}, ${now})
      ON CONFLICT (gateway_id) DO UPDATE SET url = EXCLUDED.url, seen_at = EXCLUDED.seen_at
      RETURNING received, stored, duplicates, conflicts, dead_lettered, last_message_at`);
    if (existing) { // a restart under the same FEED_GATEWAY_ID carries on counting
      Object.assign(this.counts, { received: existing.received, stored: existing.stored, duplicates: existing.duplicates, conflicts: existing.conflicts, dead_lettered: existing.dead_lettered });
      this.lastMessageAt = existing.last_message_at;
    }
    this.since = now;
    await this.recordInterval('disconnected', now, 'gateway starting');
    this.beatTimer = setInterval(() => void this.beat(), Math.min(this.o.heartbeatMs, 10_000));
    this.beatTimer.unref?.();
    this.connect();
  }

  /** Resolves when every message received so far is in the database (or dead-lettered). */
  async drained(): Promise<void> {
    while ((this.pending.length || this.current) && !this.gaveUp) {
      this.scheduleFlush(0);
      await this.flushing;
    }
    await this.records;
  }

  async status(): Promise<FeedStatus> {
    return feedStatus(this.db, this.o.tz, this.clock.now(), this.o.staleMs);
  }

  /** Stops reading, stores what was received, closes the open interval. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    clearInterval(this.beatTimer);
    clearTimeout(this.statusTimer);
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => { ws.once('close', () => resolve()); ws.terminate(); });
    }
    this.wake?.();
    await this.drained().catch(() => {});
    if (this.pending.length || this.current) {
      const lost = [...(this.current?.items ?? []), ...this.pending];
      this.log.error('closing with deals not stored: the database kept failing', { count: lost.length, ids: lost.map((i) => i.row?.id).filter(Boolean).slice(0, 100) });
    }
    const now = this.clock.now();
    this.records = this.records.then(() => this.db.query(sql`UPDATE feed_intervals SET ended_at = ${now} WHERE gateway_id = ${this.gatewayId} AND ended_at IS NULL`)).then(() => {}, (e: Error) => this.log.warn('could not close the feed interval', { error: e }));
    await this.records;
    if (this.connected) {
      this.connected = false;
      await this.publishStatus();
    }
  }

  private connect(): void {
    if (this.closing) return;
    const ws = new WebSocket(this.o.url, { handshakeTimeout: Math.max(2 * this.o.heartbeatMs, 1000), perMessageDeflate: false });
    this.ws = ws;
    let opened = false;
    let downReason = 'connection failed';
    ws.on('open', () => {
      opened = true;
      this.attempt = 0;
      this.connections += 1;
      this.connected = true;
      this.since = this.clock.now();
      this.ponged = true;
      this.missed = 0;
      this.paused = this.pending.length >= this.o.maxPending; // a new socket starts reading; hold it if still full
      if (this.paused) ws.pause();
      this.log.info('connected to the exchange', { url: this.o.url, gateway: this.gatewayId });
      void this.recordInterval('connected', this.since, null);
      this.heartbeatTimer = setInterval(() => this.heartbeat(ws), this.o.heartbeatMs);
      this.connectedGauge?.set({ gateway: this.gatewayId }, 1);
      this.emit('connected');
      void this.publishStatus();
    });
    ws.on('pong', () => { this.ponged = true; });
    ws.on('message', (data, isBinary) => this.receive(isBinary ? Buffer.from(data as Buffer).toString('utf8') : data.toString()));
    ws.on('error', (error) => { downReason = error.message; this.log.warn('exchange connection error', { url: this.o.url, error: error.message }); });
    ws.on('close', (code, reason) => {
      clearInterval(this.heartbeatTimer);
      if (opened && this.connected) {
        const why = downReason !== 'connection failed' ? downReason : `closed with code ${code}${reason.length ? ` (${reason.toString()})` : ''}`;
        this.connected = false;
        this.since = this.clock.now();
        if (this.closing) this.log.info('disconnected from the exchange: gateway stopping', { url: this.o.url });
        else this.log.warn('disconnected from the exchange', { url: this.o.url, reason: why });
        void this.recordInterval('disconnected', this.since, this.closing ? 'gateway stopping' : why);
        this.connectedGauge?.set({ gateway: this.gatewayId }, 0);
        this.emit('disconnected', why);
        void this.publishStatus();
      }
      this.scheduleReconnect();
    });
  }

  /**
   * Counted in ticks, not wall time: when our own event loop stalls (a long query), the pong
   * waits in the socket while the timer fires late, and wall time would blame the exchange.
   */
  private heartbeat(ws: WebSocket): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (this.paused) { this.ponged = true; return; } // we are not reading: a pong could not reach us
    if (this.ponged) this.missed = 0;
    else this.missed += 1;
    if (this.missed >= 2) {
      this.log.warn('no pong from the exchange for two heartbeat intervals: terminating the connection', { url: this.o.url });
      ws.emit('error', new Error(`no pong for ${2 * this.o.heartbeatMs} ms`));
      ws.terminate();
      return;
    }
    this.ponged = false;
    ws.ping();
  }

  private scheduleReconnect(): void {
    if (this.closing) return;
    const delay = backoffDelay(this.attempt, this.o.backoffMinMs, this.o.backoffMaxMs, this.o.random);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private receive(raw: string): void {
    const receivedAt = this.clock.now();
    this.counts.received += 1;
    this.lastMessageAt = receivedAt;
    let item: Item;
    try {
      const parsed = parseFeedMessage(raw, this.o.tz, this.o.gateClosureMinutes);
      item = parsed.kind === 'deal' ? { raw, receivedAt, row: parsed.row } : { raw, receivedAt, reason: parsed.reason };
    } catch (error) { // a bug of ours must not take the feed down: keep the frame for later
      item = { raw, receivedAt, reason: `message: could not be processed (${(error as Error).message})` };
    }
    this.pending.push(item);
    if (this.pending.length >= this.o.batchMax) this.scheduleFlush(0);
    else this.scheduleFlush(this.o.batchMs);
    if (!this.paused && this.pending.length >= this.o.maxPending) {
      this.paused = true;
      this.pauses += 1;
      this.ws?.pause(); // backpressure: TCP holds the rest at the exchange instead of our memory
    }
  }

  private scheduleFlush(delayMs: number): void {
    if (this.flushing) return; // the running loop picks up whatever is pending
    if (delayMs > 0) {
      this.flushTimer ??= setTimeout(() => this.startFlush(), delayMs);
      return;
    }
    this.startFlush();
  }

  private startFlush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.flushing) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = undefined;
      if (this.pending.length && !this.gaveUp) this.scheduleFlush(0);
    });
  }

  private async flushLoop(): Promise<void> {
    let failures = 0;
    while (this.current || this.pending.length) {
      const batch = (this.current ??= { items: this.pending.splice(0, this.o.batchMax) });
      try {
        await this.write(batch);
        this.current = undefined;
        failures = 0;
      } catch (error) {
        failures += 1;
        this.log.error('could not store a feed batch; retrying', { size: batch.items.length, attempt: failures, error: (error as Error).message });
        if (this.closing && failures >= 5) {
          this.gaveUp = true;
          return;
        }
        const wait = this.closing ? 200 : Math.min(this.o.backoffMaxMs, this.o.backoffMinMs * 2 ** Math.min(failures - 1, 10));
        await new Promise<void>((resolve) => { this.wake = resolve; setTimeout(resolve, wait); });
        this.wake = undefined;
      }
      if (this.paused && this.pending.length < this.o.maxPending / 2) {
        this.paused = false;
        this.ws?.resume();
      }
    }
  }

  /** Each step runs once per batch: a retry after a failure never ingests twice or counts twice. */
  private async write(batch: Batch): Promise<void> {
    const deals = batch.items.filter((i) => i.row);
    if (!batch.outcomes) {
      const rows = deals.map((i) => i.row!);
      batch.outcomes = rows.length ? await ingestTrades(this.db, rows, 'feed', this.o.tz, deals[0]!.receivedAt) : [];
      for (const [status, n] of count(batch.outcomes)) {
        this.counts[status === 'stored' ? 'stored' : status === 'duplicate' ? 'duplicates' : 'conflicts'] += n;
        this.messages?.inc({ outcome: status }, n);
        this.metrics?.tradesIngested.inc({ source: 'feed', outcome: status }, n);
      }
      const late = rows.filter((row, i) => row.after_gate_closure && batch.outcomes![i]!.status === 'stored');
      if (late.length) {
        this.afterGateClosure?.inc({}, late.length);
        this.log.warn('deals executed after their gate closure', { count: late.length, ids: late.slice(0, 20).map((r) => r.id), gate_closure_minutes: this.o.gateClosureMinutes });
      }
    }
    if (!batch.sideWritten) {
      const dead = batch.items.filter((i) => i.reason);
      const conflicts = batch.outcomes.map((o, i) => ({ o, item: deals[i]! })).filter((c) => c.o.status === 'conflict');
      if (dead.length || conflicts.length) {
        const stored = conflicts.length ? await fetchByIds(this.db, conflicts.map((c) => c.o.id)) : new Map();
        await this.db.transaction(async (tx) => {
          if (dead.length) {
            await tx.bulkInsert('feed_dead_letters', [{ name: 'gateway_id', type: 'text' }, { name: 'received_at', type: 'timestamptz' }, { name: 'raw', type: 'text' }, { name: 'reason', type: 'text' }],
              dead.map((d) => [this.gatewayId, d.receivedAt, d.raw, d.reason]));
          }
          for (const c of conflicts) { // rare: one statement each keeps text[] simple
            const before = stored.get(c.o.id);
            await tx.query(sql`
              INSERT INTO feed_conflicts (deal_id, gateway_id, detected_at, differences, stored, received, raw)
              VALUES (${c.o.id}, ${this.gatewayId}, ${c.item.receivedAt}, ${c.o.differences ?? []}::text[], ${before ? JSON.stringify(before) : null}::jsonb, ${JSON.stringify(c.item.row)}::jsonb, ${c.item.raw})`);
          }
        });
        for (const d of dead) this.log.warn('dead letter', { reason: d.reason, raw: d.raw.slice(0, 500) });
        for (const c of conflicts) this.log.warn('deal conflict: same id, other content', { id: c.o.id, differences: c.o.differences });
        this.counts.dead_lettered += dead.length;
        this.messages?.inc({ outcome: 'dead_letter' }, dead.length);
      }
      batch.sideWritten = true;
    }
    await this.saveCounts().catch((error: Error) => this.log.warn('could not save feed counters', { error: error.message }));
    this.emit('batch', batch.outcomes);
    this.scheduleStatus();
  }

  private async saveCounts(): Promise<void> {
    const c = this.counts;
    await this.db.query(sql`
      UPDATE feed_gateways SET received = ${c.received}, stored = ${c.stored}, duplicates = ${c.duplicates}, conflicts = ${c.conflicts},
        dead_lettered = ${c.dead_lettered}, last_message_at = ${this.lastMessageAt}, seen_at = ${this.clock.now()}
      WHERE gateway_id = ${this.gatewayId}`);
  }

  private async beat(): Promise<void> {
    await this.db.query(sql`UPDATE feed_gateways SET seen_at = ${this.clock.now()} WHERE gateway_id = ${this.gatewayId}`)
      .catch((error: Error) => this.log.warn('could not write the gateway beat', { error: error.message }));
  }

  /** Intervals are written in order; a failing database is logged and does not stop the feed. */
  private recordInterval(state: 'connected' | 'disconnected', at: Date, reason: string | null): Promise<void> {
    this.records = this.records.then(async () => {
      await this.db.transaction(async (tx) => {
        await tx.query(sql`UPDATE feed_intervals SET ended_at = ${at} WHERE gateway_id = ${this.gatewayId} AND ended_at IS NULL`);
        await tx.query(sql`INSERT INTO feed_intervals (gateway_id, state, started_at, reason) VALUES (${this.gatewayId}, ${state}, ${at}, ${reason})`);
        await tx.query(sql`UPDATE feed_gateways SET seen_at = ${at} WHERE gateway_id = ${this.gatewayId}`);
      });
    }).catch((error: Error) => this.log.error('could not record a feed interval', { state, error: error.message }));
    return this.records;
  }

  private scheduleStatus(): void {
    if (this.statusTimer) return;
    const wait = Math.max(0, this.lastStatusAt + this.o.statusNotifyMs - Date.now());
    this.statusTimer = setTimeout(() => { this.statusTimer = undefined; void this.publishStatus(); }, wait);
    this.statusTimer.unref?.();
  }

  /** Publishes the database's view of the feed (all gateways) for the live hub's `feed` event. */
  private async publishStatus(): Promise<void> {
    this.lastStatusAt = Date.now();
    try {
      await this.records;
      const status = await this.status();
      let payload = JSON.stringify(status);
      // NOTIFY payloads must stay under 8000 bytes: on a day of many outages send the latest ones.
      while (payload.length > 7000 && status.disconnected_intervals.length > 1) {
        status.disconnected_intervals.splice(0, Math.ceil(status.disconnected_intervals.length / 4));
        payload = JSON.stringify(status);
      }
      await this.db.notify(channels.feedStatus, payload);
      this.emit('status', status);
    } catch (error) {
      this.log.warn('could not publish the feed status', { error: (error as Error).message });
    }
  }
}

/**
 * Reconnect delay after `attempt` failed attempts (0 = the first reconnect): doubling from
 * `minMs`, capped at `maxMs`, with "equal jitter" (between half and all of it), so it is never 0
 * and redundant gateways do not reconnect in lockstep.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

function count(outcomes: IngestOutcome[]): Map<IngestOutcome['status'], number> {
  const m = new Map<IngestOutcome['status'], number>();
  for (const o of outcomes) m.set(o.status, (m.get(o.status) ?? 0) + 1);
  return m;
}
