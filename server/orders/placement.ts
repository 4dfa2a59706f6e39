// Group commit of placements. Concurrent place() calls queue up and are committed together: one
// transaction per group (up to groupMax), the next group forming while one commits; a lone
// placement goes at once (no timer waits for company). In the group's transaction the accounts
// are locked FOR UPDATE in trader_id order (the same order in every process: no deadlock between
// groups), each placement is decided in arrival order against the locked balances and sellable
// quantities in memory (exact: cents and micro-MW), and everything is written with one bulk
// statement: account moves, ledger entries, sell holds, orders, their order_new messages and
// notifications, and the NOTIFY of the live events. The database's CHECKs stay the last word:
// should the statement (or anything in the group) fail, its members are placed again one by one
// through the one-transaction path, so one bad placement never fails the others.
import type { Db, Queryable } from '../db';
import { sql } from '../db';
import { lockAccounts } from '../accounts/ledger';
import { cents, eur, micro, mwText } from '../accounts/money';
import type { Logger } from '../log';
import { apiBalance, routingKey, tradingEventsChannel, type TradingEvent } from './events';
import { cashRefusal, quantityRefusal, type TradingPolicy } from './holds';
import { canonical, orderColumnList, requiredHold, toApiOrder, type ApiOrder, type OrderRow } from './model';

/** A placement checked and ready to write: the order row (pending_new, nothing held yet) and its content for idempotent repeats. */
export interface Placement {
  o: OrderRow;
  content: string;
  /** The caller named the client_order_id (else it is the order's own id, which cannot repeat). */
  clientGiven: boolean;
}

export interface Placed {
  created: boolean;
  order: ApiOrder;
}

/** Outbox rows this process claimed at insert and sends itself right after the commit. */
export interface ClaimedRow {
  id: number;
  destination: 'exchange';
  routing_key: null;
  frame: unknown;
}

/** The dispatcher's side of pre-claiming: a lease while it can send, and the sending. */
export interface Preclaim {
  /** The claim to write with new order_new rows; undefined when this process cannot send now (they wait for any dispatcher). */
  lease(): { by: string; until: Date } | undefined;
  /** Sends rows claimed under the lease and marks them sent (or frees them for the next attempt). */
  send(rows: ClaimedRow[]): void;
}

/** What the group needs of the trading service. */
export interface PlacementHost {
  readonly db: Db;
  readonly tz: string;
  readonly policy: TradingPolicy;
  readonly publishEvents: boolean;
  readonly log: Logger;
  /** Accounts known to exist: the group creates only the others. */
  readonly knownAccounts: Set<string>;
  readonly preclaim?: Preclaim;
  describe(o: OrderRow): string;
  orderNewFrame(o: OrderRow): Record<string, unknown>;
  /** The one-transaction path (also when a group failed). */
  placeOne(p: Placement): Promise<Placed>;
  withFills(db: Queryable, rows: OrderRow[]): Promise<ApiOrder[]>;
  /** The 409 of a client_order_id taken by an order with other content. */
  conflict(clientOrderId: string, orderId: string): Error;
  /** Tells in-process listeners of a commit; never throws (a failing listener is logged). */
  committed(events: TradingEvent[], outbox: boolean): void;
}

export interface GroupStats {
  /** Transactions committed or tried for groups. */
  groups: number;
  /** Placements that went through a group. */
  placements: number;
  /** The largest group so far. */
  largest: number;
  /** Groups whose transaction failed, so that their members were placed one by one. */
  fallbacks: number;
}

interface Member {
  p: Placement;
  resolve: (placed: Placed) => void;
  reject: (error: unknown) => void;
}

/** What deciding a member came to inside the transaction; resolved or rejected after the commit. */
type Outcome =
  | { kind: 'placed'; order: ApiOrder }
  | { kind: 'same'; order: ApiOrder }
  | { kind: 'existing'; row: OrderRow }
  | { kind: 'error'; error: Error };

interface Account {
  available: bigint;
  held: bigint;
  owed: string;
  shortLimit: bigint;
}

interface Sellable {
  trader_id: string;
  start: Date;
  end: Date;
  long: bigint;
  heldBefore: bigint;
  shortLimit: bigint;
  /** MW this group adds to the product's sell hold. */
  added: bigint;
}

const key = (...parts: (string | number)[]) => parts.join('\u0000');

export class GroupCommit {
  readonly stats: GroupStats = { groups: 0, placements: 0, largest: 0, fallbacks: 0 };
  private queue: Member[] = [];
  private busy = false;

  constructor(private readonly host: PlacementHost, private readonly groupMax = 256) {}

  place(p: Placement): Promise<Placed> {
    return new Promise<Placed>((resolve, reject) => {
      this.queue.push({ p, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy || !this.queue.length) return;
    this.busy = true;
    const group = this.queue.splice(0, this.groupMax);
    // After a commit, the next group forms only once the event loop has polled for I/O (two
    // check phases have one poll phase between them): the embedded database runs in this
    // thread, so requests that arrived during the commit are read only then. Idle, a
    // placement still goes at once.
    void this.commit(group).catch((error: unknown) => {
      // Whatever went wrong after the commit, no caller is left waiting (settled ones stay as they are).
      this.host.log.error('placements: finishing a group failed', { size: group.length, error });
      for (const m of group) m.reject(error);
    }).finally(() => setImmediate(() => setImmediate(() => {
      this.busy = false;
      this.pump();
    })));
  }

  private async commit(members: Member[]): Promise<void> {
    this.stats.groups++;
    this.stats.placements += members.length;
    this.stats.largest = Math.max(this.stats.largest, members.length);
    const lease = this.host.preclaim?.lease();
    let done: { outcomes: Outcome[]; events: TradingEvent[]; claimed: ClaimedRow[] };
    try {
      done = await this.host.db.transaction((tx) => this.write(tx, members, lease));
    } catch (error) {
      this.stats.fallbacks++;
      this.host.log.warn('a group of placements failed: placing its members one by one', { size: members.length, error: (error as Error).message });
      for (const m of members) await this.host.placeOne(m.p).then(m.resolve, m.reject);
      return;
    }
    for (const m of members) this.host.knownAccounts.add(m.p.o.trader_id);
    this.host.committed(done.events, done.claimed.length === 0 || this.host.publishEvents); // never throws: listeners are isolated
    if (done.claimed.length) this.host.preclaim!.send(done.claimed);
    const existing = done.outcomes.flatMap((x) => (x.kind === 'existing' ? [x.row] : []));
    let withFills = new Map<string, ApiOrder>();
    if (existing.length) {
      try {
        withFills = new Map((await this.host.withFills(this.host.db, existing)).map((o) => [o.id, o]));
      } catch (error) {
        for (const [i, m] of members.entries()) if (done.outcomes[i]!.kind === 'existing') m.reject(error);
      }
    }
    members.forEach((m, i) => {
      const x = done.outcomes[i]!;
      if (x.kind === 'error') m.reject(x.error);
      else if (x.kind === 'existing') {
        const order = withFills.get(x.row.id);
        if (order) m.resolve({ created: false, order });
      } else m.resolve({ created: x.kind === 'placed', order: x.order });
    });
  }

  /** The group's transaction: lock, decide in arrival order, write in bulk. */
  private async write(tx: Queryable, members: Member[], lease: { by: string; until: Date } | undefined) {
    const { host } = this;
    const latest = members.reduce((t, m) => (m.p.o.created_at > t ? m.p.o.created_at : t), members[0]!.p.o.created_at);
    const traders = [...new Set(members.map((m) => m.p.o.trader_id))];
    const unknown = traders.filter((t) => !host.knownAccounts.has(t));
    if (unknown.length) {
      await tx.query(sql`
        INSERT INTO accounts (trader_id, created_at, updated_at) SELECT t, ${latest}, ${latest} FROM unnest(${unknown}::text[]) AS t ORDER BY t
        ON CONFLICT (trader_id) DO NOTHING`);
    }
    const accounts = new Map<string, Account>();
    for (const a of await lockAccounts(tx, traders)) {
      accounts.set(a.trader_id, { available: cents(a.available), held: cents(a.held), owed: a.owed, shortLimit: micro(a.short_limit_mw ?? host.policy.shortLimitMw) });
    }
    // Read under the locks (a statement of its own: it sees what the locks' previous holders committed).
    const existing = await this.existingOrders(tx, members);
    const sellable = await this.sellable(tx, members, accounts);

    const outcomes: Outcome[] = [];
    const accepted: { o: OrderRow; text: string; balance?: TradingEvent }[] = [];
    const inGroup = new Map<string, { o: OrderRow; content: string }>();
    const ledger: { o: OrderRow; need: bigint; availableAfter: bigint; heldAfter: bigint }[] = [];
    const moved = new Map<string, bigint>();
    for (const { p } of members) {
      const o = { ...p.o }; // a copy: should the group fail, its members are placed again as they came

      const id = key(o.trader_id, o.client_order_id);
      const earlier = inGroup.get(id) ?? existing.get(id);
      if (earlier) {
        const same = canonical(JSON.parse(earlier.content)) === canonical(JSON.parse(p.content));
        if (!same) outcomes.push({ kind: 'error', error: host.conflict(o.client_order_id, earlier.o.id) });
        else if (inGroup.has(id)) outcomes.push({ kind: 'same', order: toApiOrder(earlier.o, [], host.tz) });
        else outcomes.push({ kind: 'existing', row: earlier.o });
        continue;
      }
      const need = requiredHold(o, host.policy);
      const account = accounts.get(o.trader_id);
      if (!account) throw new Error(`account ${o.trader_id} is missing after it was created`);
      let balance: TradingEvent | undefined;
      if (need.cash > 0n) {
        if (need.cash > account.available) {
          outcomes.push({ kind: 'error', error: cashRefusal(need.cash, eur(account.available)) });
          continue;
        }
        account.available -= need.cash;
        account.held += need.cash;
        moved.set(o.trader_id, (moved.get(o.trader_id) ?? 0n) + need.cash);
        ledger.push({ o, need: need.cash, availableAfter: account.available, heldAfter: account.held });
        balance = { type: 'balance', trader_id: o.trader_id, balance: apiBalance({ trader_id: o.trader_id, available: eur(account.available), held: eur(account.held), owed: account.owed, updated_at: o.created_at }) };
      }
      if (need.mw > 0n) {
        const s = sellable.get(key(o.trader_id, o.delivery_start.getTime(), o.delivery_end.getTime()))!;
        const held = s.heldBefore + s.added;
        if (need.mw > s.long + s.shortLimit - held) {
          outcomes.push({ kind: 'error', error: quantityRefusal(need.mw, s.long, s.shortLimit, held) });
          continue;
        }
        s.added += need.mw;
      }
      o.held = eur(need.cash);
      o.held_mw = mwText(need.mw);
      inGroup.set(id, { o, content: p.content });
      accepted.push({ o, text: `${host.describe(o)} placed`, balance });
      outcomes.push({ kind: 'placed', order: toApiOrder(o, [], host.tz) });
    }
    if (!accepted.length) return { outcomes, events: [], claimed: [] };

    // The events of each placement: its order, its notification (whose id the insert gives) and the balance after it.
    const parts = accepted.map(({ o, text, balance }) => {
      const order: TradingEvent = { type: 'order', trader_id: o.trader_id, order: toApiOrder(o, [], host.tz) };
      const note = { trader_id: o.trader_id, at: o.created_at.toISOString(), kind: 'placed', text, order_id: o.id, read: false };
      const noteHead = `{"type":"notification","trader_id":${JSON.stringify(o.trader_id)},"notification":{"id":`;
      const noteTail = `,${JSON.stringify(note).slice(1)}}`;
      return { o, order, note, balance, noteHead, noteTail };
    });
    const iso = (d: Date) => d.toISOString();
    const sells = [...sellable.values()].filter((s) => s.added > 0n);
    const movedTraders = [...moved.keys()];
    const publish = host.publishEvents
      ? parts.flatMap((x) => [
        { order_id: x.o.id, key: routingKey(x.order), head: JSON.stringify(x.order), tail: null as string | null },
        { order_id: x.o.id, key: 'notification.placed', head: x.noteHead, tail: x.noteTail },
        ...(x.balance ? [{ order_id: x.o.id, key: routingKey(x.balance), head: JSON.stringify(x.balance), tail: null }] : []),
      ])
      : [];
    const events = host.publishEvents ? sql`, published AS (
        INSERT INTO outbox (destination, routing_key, frame, created_at)
        SELECT 'events', e.k, (e.head || coalesce(note.id::text || e.tail, ''))::jsonb, ${latest}
        FROM unnest(${publish.map((e) => e.order_id)}::uuid[], ${publish.map((e) => e.key)}::text[], ${publish.map((e) => e.head)}::text[], ${publish.map((e) => e.tail)}::text[]) WITH ORDINALITY AS e(order_id, k, head, tail, n)
        LEFT JOIN note ON e.tail IS NOT NULL AND note.order_id = e.order_id
        ORDER BY e.n
      )` : sql``;
    const os = parts.map((x) => x.o);
    const rows = await tx.query<{ order_id: string; note_id: number; outbox_id: number }>(sql`
      WITH moved AS (
        UPDATE accounts a SET available = a.available - m.amount, held = a.held + m.amount, updated_at = ${latest}
        FROM unnest(${movedTraders}::text[], ${movedTraders.map((t) => eur(moved.get(t)!))}::numeric[]) AS m(trader_id, amount)
        WHERE a.trader_id = m.trader_id
      ), entries AS (
        INSERT INTO ledger (trader_id, at, kind, amount, held_amount, owed_amount, available_after, held_after, order_id)
        SELECT l.trader_id, l.at, 'hold', -l.amount, l.amount, 0, l.available_after, l.held_after, l.order_id
        FROM unnest(${ledger.map((l) => l.o.trader_id)}::text[], ${ledger.map((l) => iso(l.o.created_at))}::timestamptz[], ${ledger.map((l) => eur(l.need))}::numeric[],
          ${ledger.map((l) => eur(l.availableAfter))}::numeric[], ${ledger.map((l) => eur(l.heldAfter))}::numeric[], ${ledger.map((l) => l.o.id)}::uuid[])
          WITH ORDINALITY AS l(trader_id, at, amount, available_after, held_after, order_id, n)
        ORDER BY l.n
      ), sold AS (
        INSERT INTO sell_holds (trader_id, delivery_start, delivery_end, held_mw, sellable_mw)
        SELECT * FROM unnest(${sells.map((s) => s.trader_id)}::text[], ${sells.map((s) => iso(s.start))}::timestamptz[], ${sells.map((s) => iso(s.end))}::timestamptz[],
          ${sells.map((s) => mwText(s.added))}::numeric[], ${sells.map((s) => mwText(s.long + s.shortLimit))}::numeric[])
        ON CONFLICT (trader_id, delivery_start, delivery_end) DO UPDATE SET held_mw = sell_holds.held_mw + EXCLUDED.held_mw, sellable_mw = EXCLUDED.sellable_mw
      ), placed AS (
        INSERT INTO orders (id, client_order_id, trader_id, side, type, time_in_force, delivery_day, delivery_start, delivery_end, quantity, limit_price, status, held, held_mw, content, created_at, updated_at)
        SELECT u.id, u.client_order_id, u.trader_id, u.side, u.type, u.time_in_force, u.delivery_day, u.delivery_start, u.delivery_end, u.quantity, u.limit_price, 'pending_new', u.held, u.held_mw, u.content::jsonb, u.at, u.at
        FROM unnest(${os.map((o) => o.id)}::uuid[], ${os.map((o) => o.client_order_id)}::text[], ${os.map((o) => o.trader_id)}::text[], ${os.map((o) => o.side)}::text[],
          ${os.map((o) => o.type)}::text[], ${os.map((o) => o.time_in_force)}::text[], ${os.map((o) => o.delivery_day)}::date[], ${os.map((o) => iso(o.delivery_start))}::timestamptz[],
          ${os.map((o) => iso(o.delivery_end))}::timestamptz[], ${os.map((o) => o.quantity)}::numeric[], ${os.map((o) => o.limit_price)}::numeric[], ${os.map((o) => o.held)}::numeric[],
          ${os.map((o) => o.held_mw)}::numeric[], ${accepted.map((a) => inGroup.get(key(a.o.trader_id, a.o.client_order_id))!.content)}::text[], ${os.map((o) => iso(o.created_at))}::timestamptz[])
          AS u(id, client_order_id, trader_id, side, type, time_in_force, delivery_day, delivery_start, delivery_end, quantity, limit_price, held, held_mw, content, at)
      ), queued AS (
        INSERT INTO outbox (destination, order_id, frame, created_at, claimed_until, claimed_by, attempts)
        SELECT 'exchange', q.order_id, q.frame::jsonb, q.at, ${lease?.until ?? null}::timestamptz, ${lease?.by ?? null}::text, ${lease ? 1 : 0}
        FROM unnest(${os.map((o) => o.id)}::uuid[], ${os.map((o) => JSON.stringify({ order_new: host.orderNewFrame(o) }))}::text[], ${os.map((o) => iso(o.created_at))}::timestamptz[]) WITH ORDINALITY AS q(order_id, frame, at, n)
        ORDER BY q.n
        RETURNING id, order_id, frame
      ), note AS (
        INSERT INTO notifications (trader_id, at, kind, text, order_id)
        SELECT n.trader_id, n.at, 'placed', n.text, n.order_id
        FROM unnest(${os.map((o) => o.trader_id)}::text[], ${os.map((o) => iso(o.created_at))}::timestamptz[], ${accepted.map((a) => a.text)}::text[], ${os.map((o) => o.id)}::uuid[]) WITH ORDINALITY AS n(trader_id, at, text, order_id, i)
        ORDER BY n.i
        RETURNING id, order_id
      )${events}
      SELECT p.order_id, note.id AS note_id, queued.id AS outbox_id, pg_notify(${tradingEventsChannel}, p.head || note.id::text || p.tail) AS notified
      FROM unnest(${os.map((o) => o.id)}::uuid[], ${parts.map((x) => `[${JSON.stringify(x.order)},${x.noteHead}`)}::text[], ${parts.map((x) => `${x.noteTail}${x.balance ? `,${JSON.stringify(x.balance)}` : ''}]`)}::text[])
        WITH ORDINALITY AS p(order_id, head, tail, n)
      JOIN note ON note.order_id = p.order_id JOIN queued ON queued.order_id = p.order_id
      ORDER BY p.n`);
    if (rows.length !== parts.length) throw new Error(`a group of ${parts.length} placements wrote ${rows.length}`);
    const by = new Map(rows.map((r) => [r.order_id, r]));
    const written: TradingEvent[] = parts.flatMap((x) => [
      x.order,
      { type: 'notification' as const, trader_id: x.o.trader_id, notification: { ...x.note, id: Number(by.get(x.o.id)!.note_id) } },
      ...(x.balance ? [x.balance] : []),
    ]);
    const claimed: ClaimedRow[] = lease
      ? parts.map((x) => ({ id: Number(by.get(x.o.id)!.outbox_id), destination: 'exchange' as const, routing_key: null, frame: { order_new: host.orderNewFrame(x.o) } }))
      : [];
    return { outcomes, events: written, claimed };
  }

  /** Orders already stored under the client_order_ids the callers named. */
  private async existingOrders(tx: Queryable, members: Member[]): Promise<Map<string, { o: OrderRow; content: string }>> {
    const named = members.filter((m) => m.p.clientGiven).map((m) => m.p.o);
    const found = new Map<string, { o: OrderRow; content: string }>();
    if (!named.length) return found;
    const rows = await tx.query<OrderRow & { content: unknown }>(sql`
      SELECT ${orderColumnList}, content FROM orders
      WHERE (trader_id, client_order_id) IN (SELECT * FROM unnest(${named.map((o) => o.trader_id)}::text[], ${named.map((o) => o.client_order_id)}::text[]))`);
    for (const { content, ...o } of rows) found.set(key(o.trader_id, o.client_order_id), { o, content: JSON.stringify(content) });
    return found;
  }

  /** Per trader and product of the group's sells: the long position and what open sells hold there. */
  private async sellable(tx: Queryable, members: Member[], accounts: Map<string, Account>): Promise<Map<string, Sellable>> {
    const products = new Map<string, Sellable>();
    for (const { p: { o } } of members) {
      const k = key(o.trader_id, o.delivery_start.getTime(), o.delivery_end.getTime());
      if (o.side === 'sell' && !products.has(k)) products.set(k, { trader_id: o.trader_id, start: o.delivery_start, end: o.delivery_end, long: 0n, heldBefore: 0n, shortLimit: accounts.get(o.trader_id)?.shortLimit ?? 0n, added: 0n });
    }
    if (!products.size) return products;
    const list = [...products.values()];
    const rows = await tx.query<{ i: number; long: string; held: string }>(sql`
      SELECT k.i::int AS i,
        coalesce((SELECT sum(CASE WHEN t.direction = 'buy' THEN t.quantity ELSE -t.quantity END) FROM trades t
          WHERE t.trader_id = k.trader_id AND t.delivery_start = k.s AND t.delivery_end = k.e AND t.recalled_at IS NULL), 0) AS long,
        coalesce((SELECT h.held_mw FROM sell_holds h WHERE h.trader_id = k.trader_id AND h.delivery_start = k.s AND h.delivery_end = k.e), 0) AS held
      FROM unnest(${list.map((s) => s.trader_id)}::text[], ${list.map((s) => s.start.toISOString())}::timestamptz[], ${list.map((s) => s.end.toISOString())}::timestamptz[]) WITH ORDINALITY AS k(trader_id, s, e, i)`);
    for (const r of rows) {
      const s = list[Number(r.i) - 1]!;
      s.long = micro(r.long);
      s.heldBefore = micro(r.held);
    }
    return products;
  }
}
