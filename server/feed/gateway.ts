// The exchange gateway: the inbound deal half of the exchange session. It runs the session
// (server/exchange) over the websocket or RabbitMQ, stores deal confirmations and recalls in
// the transaction that commits their seq (at least once from the exchange, exactly once in the
// database), records every connected and disconnected interval, and keeps its counters. Bad
// frames become dead letters; database errors are retried.
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { randomInt, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../clock';
import { systemClock } from '../clock';
import type { Db, Queryable } from '../db';
import type { HeldLock } from '../db/types';
import { sql } from '../db';
import { AmqpTransport, redactUrl } from '../exchange/amqp-transport';
import { ExchangeSession, type InboundMessage, type MessageHandlers, type UnreadableMessage } from '../exchange/session';
import type { Transport } from '../exchange/transport';
import { WsTransport } from '../exchange/ws-transport';
import { formatIssues } from '../http/errors';
import { Counter, type MetricsRegistry } from '../http/metrics';
import { channels, type FeedStatus } from '../live/events';
import { createLogger, type Logger } from '../log';
import type { TradeRow } from '../trades/normalize';
import { recallDeals } from '../trades/recalls';
import { identifier } from '../trades/schema';
import { fetchByIds, ingestTradesIn, type IngestOutcome } from '../trades/store';
import { defaultGateClosureMinutes } from '../time/market-time';
import { checkFeedDeal } from './message';
import { alive, defaultStaleMs, feedStatus, livenessNamespace } from './status';

export interface GatewayOptions {
  db: Db;
  /** ws:// or wss:// (websocket), amqp:// or amqps:// (RabbitMQ). */
  url: string;
  tz: string;
  clock?: Clock;
  log?: Logger;
  metrics?: MetricsRegistry;
  /** Names this gateway in the database; default host:pid:random. A fixed id carries its counters over restarts. */
  gatewayId?: string;
  /** The member the exchange numbers its messages for (the resume point is kept per member). */
  member?: string;
  /** Ping every this many ms; no pong for two intervals terminates the connection (AMQP: the broker heartbeat). */
  heartbeatMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Flush a micro-batch at this many messages ... */
  batchMax?: number;
  /** ... or this many ms after its first message. */
  batchMs?: number;
  /** Stop reading the socket while this many messages wait for the database. */
  maxPending?: number;
  /** AMQP: names of the exchange and queues start with this; at most this many unacknowledged messages. */
  amqpPrefix?: string;
  amqpPrefetch?: number;
  /** Ask the exchange again when a replay has not started after this long. */
  resumeTimeoutMs?: number;
  /** Publish count changes on the feed_status channel at most this often (state changes at once). */
  statusNotifyMs?: number;
  staleMs?: number;
  /** Handlers of other message kinds (execution reports, ...), run in the same transaction as the seq commit. */
  handlers?: MessageHandlers;
  /** Source of jitter (tests make it deterministic). */
  random?: () => number;
  /** Trading of a product closes this many minutes before its delivery starts; later deals are flagged. */
  gateClosureMinutes?: number;
}

export type FeedCounts = FeedStatus['counts'];

const feedMetrics: WeakMap<MetricsRegistry, { messages: Counter; connected: Counter; committed: Counter; afterGateClosure: Counter }> = new WeakMap();

const RecallBody = z.strictObject({
  id: identifier('exchange deal id'),
  reason: z.string({ error: 'must be a string: why the exchange recalled the deal' }).min(1, { error: 'must not be empty' }).max(1000, { error: 'must be at most 1000 characters' }),
});

interface DeadLetter {
  arrival: number;
  raw: string;
  receivedAt: Date;
  reason: string;
  seq: number | null;
}

export class GatewayIdInUseError extends Error {}

export class FeedGateway extends EventEmitter {
  readonly gatewayId: string;
  readonly member: string;
  readonly counts: FeedCounts = { received: 0, stored: 0, duplicates: 0, conflicts: 0, dead_lettered: 0, recalls: 0, ignored: 0 };
  connected = false;
  since: Date | null = null;
  lastMessageAt: Date | null = null;
  readonly session: ExchangeSession;
  readonly transport: Transport;

  private readonly db: Db;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly tz: string;
  private readonly url: string;
  private readonly heartbeatMs: number;
  private readonly statusNotifyMs: number;
  private readonly staleMs: number;
  private readonly messages?: Counter;
  private readonly metrics?: MetricsRegistry;
  private readonly connectedGauge?: Counter;
  private readonly committedGauge?: Counter;
  private readonly afterGateClosure?: Counter;
  private readonly gateClosureMinutes: number;
  private closing = false;
  private beatTimer?: NodeJS.Timeout;
  private records: Promise<void> = Promise.resolve();
  private lastStatusAt = 0;
  private statusTimer?: NodeJS.Timeout;
  private lock?: HeldLock;
  /**
   * What the batch being written adds up to, per transaction (a failed attempt's is dropped):
   * its dead letters, stored last in arrival order, and its counts, committed with its seq.
   */
  private batches = new Map<Queryable, { dead: DeadLetter[]; counts: Omit<FeedCounts, 'received' | 'ignored'> }>();

  constructor(options: GatewayOptions) {
    super();
    this.db = options.db;
    this.clock = options.clock ?? systemClock;
    this.tz = options.tz;
    this.gateClosureMinutes = options.gateClosureMinutes ?? defaultGateClosureMinutes;
    this.url = options.url;
    this.log = (options.log ?? createLogger('silent')).child({ part: 'feed' });
    this.gatewayId = options.gatewayId ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.member = options.member ?? 'default';
    this.heartbeatMs = options.heartbeatMs ?? 10_000;
    this.statusNotifyMs = options.statusNotifyMs ?? 1000;
    this.staleMs = options.staleMs ?? Math.max(defaultStaleMs, 3 * this.heartbeatMs);
    const link = { heartbeatMs: this.heartbeatMs, backoffMinMs: options.backoffMinMs ?? 500, backoffMaxMs: options.backoffMaxMs ?? 30_000, random: options.random ?? Math.random };
    this.transport = /^amqps?:/.test(options.url)
      ? new AmqpTransport(options.url, { ...link, prefix: options.amqpPrefix ?? 'powerdesk.exchange', prefetch: options.amqpPrefetch ?? 2 * (options.batchMax ?? 1000) }, this.log)
      : new WsTransport(options.url, link, this.log);
    const deals = (tx: Queryable, messages: InboundMessage[]) => this.storeDeals(tx, messages);
    this.session = new ExchangeSession({
      db: this.db, transport: this.transport, member: this.member, gatewayId: this.gatewayId, clock: this.clock, log: this.log,
      handlers: { deal_confirmation: deals, trade_confirmation: deals, deal_recall: (tx, messages) => this.storeRecalls(tx, messages), ...options.handlers },
      unreadable: async (tx, messages) => { this.deadLetter(tx, messages); },
      finish: (tx) => this.finishBatch(tx),
      batchMax: options.batchMax, batchMs: options.batchMs, maxPending: options.maxPending,
      backoffMinMs: options.backoffMinMs, backoffMaxMs: options.backoffMaxMs, resumeTimeoutMs: options.resumeTimeoutMs,
    });
    this.transport.on('message', () => {
      this.counts.received += 1;
      this.lastMessageAt = this.clock.now();
    });
    this.session.on('up', () => this.onUp());
    this.session.on('down', (reason) => this.onDown(reason));
    this.session.on('store_failed', ({ error }) => this.onStoreFailed(error));
    this.session.on('committed', ({ committed }) => {
      if (this.storeFailure) this.onStored();
      this.counts.ignored = this.ignoredBefore + this.session.state.ignored;
      this.committedGauge?.set({ member: this.member }, committed);
      void this.saveCounts().catch((error: Error) => this.log.warn('could not save feed counters', { error: error.message }));
      this.scheduleStatus();
    });
    if (options.metrics) {
      let m = feedMetrics.get(options.metrics);
      if (!m) {
        m = {
          messages: options.metrics.register(new Counter('powerdesk_feed_messages_total', 'Exchange feed messages by outcome (stored, duplicate, conflict, dead_letter, recall)')),
          connected: options.metrics.register(new Counter('powerdesk_feed_connected', 'Whether this process\'s gateway is connected to the exchange (1) or not (0)', 'gauge')),
          committed: options.metrics.register(new Counter('powerdesk_exchange_committed_seq', 'Highest contiguous exchange seq committed, per member', 'gauge')),
          afterGateClosure: options.metrics.register(new Counter('powerdesk_feed_after_gate_closure_total', 'Deals stored from the exchange feed that were executed after their product\'s gate closure')),
        };
        feedMetrics.set(options.metrics, m);
      }
      this.messages = m.messages;
      this.connectedGauge = m.connected;
      this.committedGauge = m.committed;
      this.afterGateClosure = m.afterGateClosure;
      this.metrics = options.metrics;
    }
    this.on('error', () => {}); // an EventEmitter 'error' without a listener would throw
  }

  /**
   * Since when (and why) the database keeps refusing to store what the exchange sent: a database
   * that is down, not a bad deal (those become dead letters). Retried with backoff; cleared by
   * the next commit. Shown in /readyz and, where the database can still be read, /v1/feed/status.
   */
  storeFailure: { since: Date; error: string; attempts: number } | null = null;

  private onStoreFailed(error: Error): void {
    const now = this.clock.now();
    this.storeFailure = { since: this.storeFailure?.since ?? now, error: error.message, attempts: (this.storeFailure?.attempts ?? 0) + 1 };
    void this.db.query(sql`UPDATE feed_gateways SET store_failing_since = coalesce(store_failing_since, ${now}), store_error = ${error.message} WHERE gateway_id = ${this.gatewayId}`)
      .then(() => this.publishStatus(), () => {}); // the database may be down: the readiness check still says so
  }

  private onStored(): void {
    this.storeFailure = null;
    void this.db.query(sql`UPDATE feed_gateways SET store_failing_since = NULL, store_error = NULL WHERE gateway_id = ${this.gatewayId}`)
      .catch((error: Error) => this.log.warn('could not clear the store failure of the gateway', { error: error.message }));
  }

  /** Connections opened so far (tests and logs). */
  get connections(): number {
    return this.transport.connections;
  }

  /** Times reading was paused because too much waited for the database. */
  get pauses(): number {
    return this.session.pauses;
  }

  /**
   * Registers the gateway (taking over its own row after a crash, refusing an id that a live
   * gateway uses), closes the intervals that gateways which died left open, and starts the session.
   */
  async start(): Promise<void> {
    const now = this.clock.now();
    this.lock = await this.takeLivenessLock();
    const register = () => this.db.transaction(async (tx) => {
      const [other] = await tx.query<{ alive: boolean }>(sql`
        SELECT ${alive(this.staleMs, now)} AS alive FROM feed_gateways g WHERE g.gateway_id = ${this.gatewayId} FOR UPDATE`);
      if (other?.alive) return false;
      const [existing] = await tx.query<FeedCounts & { last_message_at: Date | null }>(sql`
        INSERT INTO feed_gateways (gateway_id, url, seen_at, lock_key, transport) VALUES (${this.gatewayId}, ${redactUrl(this.url)}, ${now}, ${this.lockKey}, ${this.transport.kind})
        ON CONFLICT (gateway_id) DO UPDATE SET url = EXCLUDED.url, lock_key = EXCLUDED.lock_key, transport = EXCLUDED.transport
        RETURNING received, stored, duplicates, conflicts, dead_lettered, recalls, ignored, last_message_at`);
      if (existing) { // a restart under the same id carries on counting
        const { last_message_at, ...counts } = existing;
        Object.assign(this.counts, counts);
        this.ignoredBefore = counts.ignored;
        this.lastMessageAt = last_message_at;
      }
      // Intervals left open by gateways that died (killed, crashed) end at their last beat.
      await tx.query(sql`
        UPDATE feed_intervals i SET ended_at = greatest(i.started_at, g.seen_at)
        FROM feed_gateways g
        WHERE i.gateway_id = g.gateway_id AND i.ended_at IS NULL AND (g.gateway_id = ${this.gatewayId} OR NOT ${alive(this.staleMs, now)})`);
      await tx.query(sql`UPDATE feed_gateways SET seen_at = ${now} WHERE gateway_id = ${this.gatewayId}`);
      return true;
    });
    const taken = await register().catch(async (error: Error) => {
      await this.lock?.release();
      throw error;
    });
    if (!taken) {
      await this.lock?.release();
      throw new GatewayIdInUseError(`FEED_GATEWAY_ID: gateway id "${this.gatewayId}" is in use by a gateway that is running; give each gateway its own FEED_GATEWAY_ID`);
    }
    this.since = now;
    await this.recordInterval('disconnected', now, 'gateway starting');
    this.beatTimer = setInterval(() => void this.beat(), Math.min(this.heartbeatMs, 5000));
    this.beatTimer.unref?.();
    await this.session.start();
  }

  private lockKey = 0;
  /** Ignored frames counted by earlier runs under this id. */
  private ignoredBefore = 0;

  private async takeLivenessLock(): Promise<HeldLock | undefined> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const key = randomInt(1, 2 ** 31 - 1);
      const lock = await this.db.advisoryLock(livenessNamespace, key);
      if (lock) {
        this.lockKey = key;
        return lock;
      }
    }
    throw new Error('could not take a liveness lock for the gateway');
  }

  /** Sends one frame to the exchange (orders); resolves once the transport accepted it, rejects when not connected. */
  send(frame: object | string): Promise<void> {
    return this.session.send(frame);
  }

  /** Resolves when every message received so far is in the database (or dead-lettered). */
  async drained(): Promise<void> {
    await this.session.drained();
    await this.records;
  }

  async status(): Promise<FeedStatus> {
    return feedStatus(this.db, this.tz, this.clock.now(), this.staleMs);
  }

  /** Stops reading, stores what was received, closes the open interval. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.beatTimer);
    clearTimeout(this.statusTimer);
    await this.session.close();
    const lost = this.session.unstored;
    if (lost.length) {
      this.log.error('closing with exchange messages not stored: the database kept failing (the exchange replays them on the next start)', { count: lost.length, seqs: lost.map((i) => i.seq).filter((s) => s !== null).slice(0, 100) });
    }
    await this.saveCounts().catch(() => {});
    const now = this.clock.now();
    this.records = this.records.then(() => this.db.query(sql`UPDATE feed_intervals SET ended_at = ${now} WHERE gateway_id = ${this.gatewayId} AND ended_at IS NULL`)).then(() => {}, (e: Error) => this.log.warn('could not close the feed interval', { error: e }));
    await this.records;
    if (this.connected) {
      this.connected = false;
      await this.publishStatus();
    }
    await this.lock?.release();
  }

  private onUp(): void {
    this.connected = true;
    this.since = this.clock.now();
    this.log.info('connected to the exchange', { url: redactUrl(this.url), transport: this.transport.kind, gateway: this.gatewayId, member: this.member, resume_after: this.session.state.committed });
    void this.recordInterval('connected', this.since, null);
    this.connectedGauge?.set({ gateway: this.gatewayId }, 1);
    this.emit('connected');
    void this.publishStatus();
  }

  private onDown(reason: string): void {
    if (!this.connected) return;
    this.connected = false;
    this.since = this.clock.now();
    if (this.closing) this.log.info('disconnected from the exchange: gateway stopping', { url: redactUrl(this.url) });
    else this.log.warn('disconnected from the exchange', { url: redactUrl(this.url), reason });
    void this.recordInterval('disconnected', this.since, this.closing ? 'gateway stopping' : reason);
    this.connectedGauge?.set({ gateway: this.gatewayId }, 0);
    this.emit('disconnected', reason);
    void this.publishStatus();
  }

  /** deal_confirmation (and its synonym trade_confirmation): validated, stored idempotently on the deal id. */
  private async storeDeals(tx: Queryable, messages: InboundMessage[]) {
    const deals: { message: InboundMessage; row: TradeRow }[] = [];
    const dead: DeadLetter[] = [];
    for (const m of messages) {
      const checked = checkFeedDeal(m.body, this.tz, m.kind, this.gateClosureMinutes);
      if (checked.ok) deals.push({ message: m, row: checked.value });
      else dead.push({ arrival: m.arrival, raw: m.raw, receivedAt: m.receivedAt, reason: checked.message, seq: m.seq });
    }
    const refused = new Set<number>();
    const outcomes: IngestOutcome[] = [];
    if (deals.length) {
      const all = await this.ingestSplitting(tx, deals, deals[0]!.message.receivedAt);
      all.forEach((o, i) => {
        if ('refused' in o) {
          refused.add(i);
          const m = deals[i]!.message;
          dead.push({ arrival: m.arrival, raw: m.raw, receivedAt: m.receivedAt, reason: `${m.kind}: the database refused the deal (${o.refused})`, seq: m.seq });
        } else outcomes.push(o);
      });
      if (refused.size) deals.splice(0, deals.length, ...deals.filter((_d, i) => !refused.has(i)));
    }
    const conflicts = outcomes.map((o, i) => ({ o, deal: deals[i]! })).filter((c) => c.o.status === 'conflict');
    if (conflicts.length) {
      const stored = await fetchByIds(tx, conflicts.map((c) => c.o.id));
      for (const c of conflicts) { // rare: one statement each keeps text[] simple
        const before = stored.get(c.o.id);
        await tx.query(sql`
          INSERT INTO feed_conflicts (deal_id, gateway_id, detected_at, differences, stored, received, raw)
          VALUES (${c.o.id}, ${this.gatewayId}, ${c.deal.message.receivedAt}, ${c.o.differences ?? []}::text[], ${before ? JSON.stringify(before) : null}::jsonb, ${JSON.stringify(c.deal.row)}::jsonb, ${c.deal.message.raw})`);
      }
    }
    this.deadLetter(tx, dead);
    const counts = this.batchOf(tx).counts;
    for (const [status, n] of count(outcomes)) counts[status === 'stored' ? 'stored' : status === 'duplicate' ? 'duplicates' : 'conflicts'] += n;
    return () => {
      for (const [status, n] of count(outcomes)) {
        this.counts[status === 'stored' ? 'stored' : status === 'duplicate' ? 'duplicates' : 'conflicts'] += n;
        this.messages?.inc({ outcome: status }, n);
        this.metrics?.tradesIngested.inc({ source: 'feed', outcome: status }, n);
      }
      for (const c of conflicts) this.log.warn('deal conflict: same id, other content', { id: c.o.id, differences: c.o.differences });
      const late = deals.filter((d, i) => d.row.after_gate_closure && outcomes[i]!.status === 'stored');
      if (late.length) {
        this.afterGateClosure?.inc({}, late.length);
        this.log.warn('deals executed after their gate closure', { count: late.length, ids: late.slice(0, 20).map((d) => d.row.id), gate_closure_minutes: this.gateClosureMinutes });
      }
      this.emit('batch', outcomes);
    };
  }

  /**
   * Stores the deals in a savepoint; when the database refuses them for what they contain (a
   * data or constraint error, not a lost connection), the half that holds the culprit is tried
   * again, down to the single deal, which comes back refused with the database's reason.
   */
  private async ingestSplitting(tx: Queryable, deals: readonly { row: TradeRow }[], receivedAt: Date): Promise<(IngestOutcome | { refused: string })[]> {
    try {
      return await withSavepoint(tx, () => ingestTradesIn(tx, deals.map((d) => d.row), 'feed', this.tz, receivedAt));
    } catch (error) {
      if (!refusedByDatabase(error)) throw error;
      if (deals.length === 1) return [{ refused: (error as Error).message }];
      const half = Math.ceil(deals.length / 2);
      return [...await this.ingestSplitting(tx, deals.slice(0, half), receivedAt), ...await this.ingestSplitting(tx, deals.slice(half), receivedAt)];
    }
  }

  /** deal_recall: the trade stays, marked recalled; a recall of a deal not stored yet waits for it. */
  private async storeRecalls(tx: Queryable, messages: InboundMessage[]) {
    const recalls = [];
    const dead: DeadLetter[] = [];
    for (const m of messages) {
      const parsed = RecallBody.safeParse(m.body, { reportInput: true });
      if (parsed.success) recalls.push({ id: parsed.data.id, reason: parsed.data.reason, recalledAt: m.receivedAt, seq: m.seq, gatewayId: this.gatewayId });
      else dead.push({ arrival: m.arrival, raw: m.raw, receivedAt: m.receivedAt, reason: formatIssues(parsed.error.issues, m.kind), seq: m.seq });
    }
    const outcomes = await recallDeals(tx, recalls, 'feed', this.tz);
    this.deadLetter(tx, dead);
    this.batchOf(tx).counts.recalls += outcomes.filter((o) => o.status !== 'repeated').length;
    return () => {
      const fresh = outcomes.filter((o) => o.status !== 'repeated');
      this.counts.recalls += fresh.length;
      this.messages?.inc({ outcome: 'recall' }, fresh.length);
      for (const o of fresh) this.log.info('deal recalled by the exchange', { id: o.id, status: o.status });
    };
  }

  private batchOf(tx: Queryable) {
    let batch = this.batches.get(tx);
    if (!batch) {
      batch = { dead: [], counts: { stored: 0, duplicates: 0, conflicts: 0, dead_lettered: 0, recalls: 0 } };
      this.batches.set(tx, batch);
    }
    return batch;
  }

  private deadLetter(tx: Queryable, dead: readonly DeadLetter[]): void {
    if (!dead.length) return;
    const batch = this.batchOf(tx);
    for (const d of dead) batch.dead.push({ arrival: d.arrival, raw: d.raw, receivedAt: d.receivedAt, reason: d.reason, seq: d.seq });
    batch.counts.dead_lettered += dead.length;
  }

  /**
   * The batch's dead letters in one statement, and its counts added to the gateway's row in the
   * same transaction: after a crash the counters say exactly what was committed.
   */
  private async finishBatch(tx: Queryable) {
    const batch = this.batches.get(tx);
    this.batches.clear(); // whatever else is there came from attempts that rolled back
    if (!batch) return undefined;
    const c = batch.counts;
    await tx.query(sql`
      UPDATE feed_gateways SET stored = stored + ${c.stored}, duplicates = duplicates + ${c.duplicates}, conflicts = conflicts + ${c.conflicts},
        dead_lettered = dead_lettered + ${c.dead_lettered}, recalls = recalls + ${c.recalls}
      WHERE gateway_id = ${this.gatewayId}`);
    const dead = batch.dead.sort((a, b) => a.arrival - b.arrival);
    if (!dead.length) return undefined;
    await tx.bulkInsert('feed_dead_letters', [
      { name: 'gateway_id', type: 'text' }, { name: 'received_at', type: 'timestamptz' }, { name: 'raw', type: 'text' }, { name: 'reason', type: 'text' }, { name: 'seq', type: 'bigint' },
    ], dead.map((d) => [this.gatewayId, d.receivedAt, d.raw, d.reason, d.seq]));
    return () => {
      for (const d of dead) this.log.warn('dead letter', { reason: d.reason, seq: d.seq, raw: d.raw.slice(0, 500) });
      this.counts.dead_lettered += dead.length;
      this.messages?.inc({ outcome: 'dead_letter' }, dead.length);
    };
  }

  /** What is counted on arrival (the rest is committed with each batch). */
  private async saveCounts(): Promise<void> {
    const c = this.counts;
    await this.db.query(sql`
      UPDATE feed_gateways SET received = ${c.received}, ignored = ${c.ignored}, last_message_at = ${this.lastMessageAt}, seen_at = ${this.clock.now()}
      WHERE gateway_id = ${this.gatewayId}`);
  }

  private async beat(): Promise<void> {
    try {
      if (this.lock && !(await this.lock.renew())) this.log.warn('lost the gateway liveness lock: other processes see this gateway as gone');
      await this.db.query(sql`UPDATE feed_gateways SET seen_at = ${this.clock.now()} WHERE gateway_id = ${this.gatewayId}`);
    } catch (error) {
      this.log.warn('could not write the gateway beat', { error: (error as Error).message });
    }
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
    const wait = Math.max(0, this.lastStatusAt + this.statusNotifyMs - Date.now());
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
      while (payload.length > 7000 && (status.disconnected_intervals.length > 1 || status.sessions.some((s) => s.gaps.length > 1))) {
        status.disconnected_intervals.splice(0, Math.ceil(status.disconnected_intervals.length / 4));
        for (const s of status.sessions) s.gaps.splice(0, Math.ceil(s.gaps.length / 4));
        payload = JSON.stringify(status);
      }
      await this.db.notify(channels.feedStatus, payload);
      this.emit('status', status);
    } catch (error) {
      this.log.warn('could not publish the feed status', { error: (error as Error).message });
    }
  }
}

/** SQLSTATE classes of a statement the database refuses for its data: 22 data exception, 23 constraint, 54 program limit. */
export function refusedByDatabase(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
}

/** Runs `fn` in a savepoint of the transaction: a failure undoes only what `fn` did. */
async function withSavepoint<T>(tx: Queryable, fn: () => Promise<T>): Promise<T> {
  await tx.query(sql`SAVEPOINT feed_deals`);
  try {
    const result = await fn();
    await tx.query(sql`RELEASE SAVEPOINT feed_deals`);
    return result;
  } catch (error) {
    await tx.query(sql`ROLLBACK TO SAVEPOINT feed_deals`);
    await tx.query(sql`RELEASE SAVEPOINT feed_deals`);
    throw error;
  }
}

function count(outcomes: IngestOutcome[]): Map<IngestOutcome['status'], number> {
  const m = new Map<IngestOutcome['status'], number>();
  for (const o of outcomes) m.set(o.status, (m.get(o.status) ?? 0) + 1);
  return m;
}
