// What the exchange gateway's test files share: one test server per file, a session member of
// its own per test (resume points are per member), simulators and gateways closed after each test.
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { startExchangeSim, type ExchangeSim, type ExchangeSimOptions } from '../../scripts/exchange-sim';
import { sql, type Db, type Queryable } from '../../server/db';
import { FeedGateway, type GatewayOptions } from '../../server/feed/gateway';
import { startTestServer, type TestServer } from './server';
import { until } from './wait';

export interface ExchangeHarness {
  readonly server: TestServer;
  /** This test's member. */
  readonly member: string;
  /** Run after the test, last added first. */
  readonly cleanup: (() => Promise<unknown>)[];
  sim(options?: ExchangeSimOptions): Promise<ExchangeSim>;
  gateway(url: string, options?: Partial<GatewayOptions>): Promise<FeedGateway>;
}

/** Registers the file's hooks; gateways get `defaults` (fast heartbeats and backoff) and this test's member. */
export function exchangeHarness(defaults: Partial<GatewayOptions>, simDefaults: () => ExchangeSimOptions = () => ({})): ExchangeHarness {
  let server: TestServer | undefined;
  let member = '';
  const cleanup: (() => Promise<unknown>)[] = [];
  beforeAll(async () => { server = await startTestServer(); });
  beforeEach(() => { member = `m${Math.random().toString(36).slice(2, 10)}`; });
  afterEach(async () => { while (cleanup.length) await cleanup.pop()!().catch(() => {}); });
  afterAll(async () => { await server?.close(); });
  const harness: ExchangeHarness = {
    get server() { return server!; },
    get member() { return member; },
    cleanup,
    async sim(options = {}) {
      const s = await startExchangeSim({ idPrefix: `x${Math.random().toString(36).slice(2, 8)}`, ...simDefaults(), ...options });
      cleanup.push(() => s.close());
      return s;
    },
    async gateway(url, options = {}) {
      const g = new FeedGateway({ db: server!.deps.db, url, tz: 'Europe/Berlin', member, ...defaults, ...options });
      cleanup.push(() => g.close());
      await g.start();
      return g;
    },
  };
  return harness;
}

export async function connected(g: FeedGateway, connections = 1): Promise<void> {
  await until(() => g.connected && g.connections >= connections, `gateway connection #${connections}`);
}

/** Stored trades whose id starts with `prefix-`, and how many rows each has. */
export async function storedIds(db: Queryable, prefix: string): Promise<Map<string, number>> {
  const rows = await db.query<{ id: string; n: number }>(sql`SELECT id, count(*)::int AS n FROM trades WHERE id LIKE ${`${prefix}-%`} GROUP BY id`);
  return new Map(rows.map((r) => [r.id, r.n]));
}

/** The real database with its transactions routed through `transaction` (slow or failing). */
export function withTransaction(db: Db, transaction: Db['transaction']): Db {
  return {
    kind: db.kind, query: db.query.bind(db), bulkInsert: db.bulkInsert.bind(db), execScript: db.execScript.bind(db), exclusive: db.exclusive.bind(db),
    listen: db.listen.bind(db), notify: db.notify.bind(db), advisoryLock: db.advisoryLock.bind(db), close: async () => {}, transaction,
  };
}
