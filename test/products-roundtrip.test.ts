// Every delivery product the feed accepts, round trip through every interface: random hours,
// quarter hours and other quarter-hour periods of DST and ordinary days, in every notation the
// exchange uses. Feed -> GET /v1/trades -> POST is a duplicate; a nightly file -> import -> GET
// equals the file; the PnL recomputed from GET /v1/trades equals the report's.
// The seed is random per run and printed with every failure (PRODUCTS_SEED=n repeats a run).
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeSim, type ExchangeSim, type SimDeal } from '../scripts/exchange-sim';
import { addUser } from '../server/auth/users';
import { sql } from '../server/db';
import { FeedGateway } from '../server/feed/gateway';
import { Importer } from '../server/importer/importer';
import type { PnlReport } from '../server/live/events';
import { createLogger } from '../server/log';
import { hoursOfDay, type HourSlot } from '../server/time/market-time';
import { startTestServer, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

const tz = 'Europe/Berlin';
const seed = Number(process.env.PRODUCTS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const days = ['2023-02-06', '2023-03-26', '2023-10-29', '2024-03-31', '2024-07-15', '2024-10-27'];
const service = { username: 'rt-importer', password: 'rt-importer-password' };

/** Deterministic for a seed (mulberry32). */
function generator(s: number) {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = generator(seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
const pad = (n: number) => String(n).padStart(2, '0');
const clock = (minute: number) => `${pad(Math.floor(minute / 60) % 24)}:${pad(minute % 60)}`;

/** A product, written here independently of the server: where it starts, how long, and its notations. */
interface Product {
  day: string;
  slot: HourSlot;
  startMinute: number;
  minutes: number;
  /** How the exchange may write it (any of its notations). */
  feedNotation: string;
  /** What the API shows: the start hour, and the period unless it is the plain (first) hour. */
  api: { delivery_hour: number; delivery_period?: string };
  start: Date;
  end: Date;
}

function randomProduct(): Product {
  const day = pick(days);
  const slots = hoursOfDay(day, tz);
  const slot = pick(slots);
  const repeated = slots.filter((s) => s.hour === slot.hour).length > 1;
  const kind = rand();
  let startMinute = 0;
  let minutes = 60;
  if (kind < 0.4) { startMinute = pick([0, 15, 30, 45]); minutes = 15; } // quarter hours
  else if (kind < 0.55) { startMinute = pick([0, 15, 30, 45]); minutes = pick([30, 45, 60]); } // other periods of quarter hours
  if (slot.hour === 23 && startMinute + minutes > 60) minutes = 60 - startMinute; // the day ends at midnight
  const from = slot.hour * 60 + startMinute;
  const whole = startMinute === 0 && minutes === 60;
  const second = repeated && slot.occurrence === 2;
  const suffix = second ? 'B' : repeated ? pick(['', 'A']) : '';
  const feedNotation = whole && rand() < 0.7 ? `${pad(slot.hour)}-${pad((slot.hour + 1) % 24)}${suffix}` : `${clock(from)}-${clock(from + minutes)}${suffix}`;
  const canonical = whole ? `${pad(slot.hour)}-${pad((slot.hour + 1) % 24)}${second ? 'B' : ''}` : `${clock(from)}-${clock(from + minutes)}${second ? 'B' : ''}`;
  const start = new Date(slot.start.getTime() + startMinute * 60_000);
  return {
    day, slot, startMinute, minutes, feedNotation, start, end: new Date(start.getTime() + minutes * 60_000),
    api: whole && !second ? { delivery_hour: slot.hour } : { delivery_hour: slot.hour, delivery_period: canonical },
  };
}

/** Prices with cents (negative ones too) and quantities with up to 6 decimals. */
const randomPriceCents = () => Math.round((rand() * 30_000 - 2_000));
const randomQuantity = () => Math.round(rand() * 50_000_000 + 1) / 1_000_000;

interface ApiTrade { id: string; price: number; quantity: number; direction: 'buy' | 'sell'; delivery_day: string; delivery_hour: number; delivery_period?: string; trader_id: string; execution_time: string }

let server: TestServer;
let exchange: ExchangeSim;
let gateway: FeedGateway;

beforeAll(async () => {
  server = await startTestServer();
  await addUser(server.deps.db, { ...service, role: 'service' });
  exchange = await startExchangeSim({ rate: 0, idPrefix: `rt${seed}` });
  gateway = new FeedGateway({ db: server.deps.db, url: exchange.url, tz, heartbeatMs: 1000, batchMs: 5 });
  await gateway.start();
  await until(() => gateway.connected, 'the gateway connected to the exchange');
});
afterAll(async () => {
  await gateway?.close();
  await exchange?.close();
  await server?.close();
});

const getTrades = async (trader: string): Promise<ApiTrade[]> => {
  const res = await server.request(`/v1/trades?trader_id=${trader}`);
  expect(res.status).toBe(200);
  return (await res.json()) as ApiTrade[];
};

/** PnL of a day in cents x 10^6 (exact integers), from API trades alone: energy = MW x the period's hours. */
function pnlOf(trades: ApiTrade[], day: string): number {
  let micro = 0n;
  for (const t of trades.filter((x) => x.delivery_day === day)) {
    const minutes = t.delivery_period ? periodMinutes(t.delivery_period) : 60;
    const value = BigInt(t.price) * BigInt(Math.round(t.quantity * 1_000_000)) * BigInt(minutes) / 60n;
    micro += t.direction === 'sell' ? value : -value;
  }
  return Number(micro) / 1e8; // EUR
}

function periodMinutes(period: string): number {
  const m = /^(\d{2})(?::(\d{2}))?-(\d{2})(?::(\d{2}))?[AB]?$/.exec(period)!;
  const from = Number(m[1]) * 60 + Number(m[2] ?? 0);
  let to = Number(m[3]) * 60 + Number(m[4] ?? 0);
  if (to === 0) to = 24 * 60;
  return to - from;
}

describe(`every product round trip (PRODUCTS_SEED=${seed})`, () => {
  it('does answer "duplicate" to every trade posted back exactly as GET /v1/trades shows it after the feed delivered it', async () => {
    const trader = `rt_feed_${seed}`;
    const products = Array.from({ length: 250 }, randomProduct);
    const sent: { deal: SimDeal; product: Product }[] = [];
    for (const product of products) {
      const deal = exchange.sendDeal({
        price: randomPriceCents() / 100, quantity: randomQuantity(), direction: rand() < 0.5 ? 'buy' : 'sell',
        delivery_day: product.day, delivery_hour: product.feedNotation, trader_id: trader,
        execution_time: new Date(product.start.getTime() - 3_600_000).toISOString(),
      });
      sent.push({ deal, product });
    }
    await until(async () => (await getTrades(trader)).length === sent.length, `all ${sent.length} feed deals stored`, 20_000);
    const listed = await getTrades(trader);
    const byId = new Map(listed.map((t) => [t.id, t]));
    for (const { deal, product } of sent) {
      const shown = byId.get(deal.id)!;
      expect({ hour: shown.delivery_hour, period: shown.delivery_period }, `${product.day} ${product.feedNotation} (seed ${seed})`).toEqual({ hour: product.api.delivery_hour, period: product.api.delivery_period });
      expect(shown.price, `price of ${deal.id} (seed ${seed})`).toBe(Math.round(deal.price * 100));
      expect(shown.quantity).toBe(deal.quantity);
    }
    // Stored where the exchange meant it.
    const rows = await server.deps.db.query<{ id: string; delivery_start: Date; delivery_end: Date }>(sql`SELECT id, delivery_start, delivery_end FROM trades WHERE trader_id = ${trader}`);
    const stored = new Map(rows.map((r) => [r.id, [r.delivery_start.toISOString(), r.delivery_end.toISOString()]]));
    for (const { deal, product } of sent) expect(stored.get(deal.id), `${product.day} ${product.feedNotation} (seed ${seed})`).toEqual([product.start.toISOString(), product.end.toISOString()]);

    // Posted back one by one (a sample) and as one batch (all): duplicates, nothing new stored.
    for (const t of listed.slice(0, 25)) {
      const res = await server.request('/v1/trades', { method: 'POST', json: t });
      expect(res.status, `${JSON.stringify(t)} (seed ${seed}): ${await res.clone().text()}`).toBe(200);
      expect(((await res.json()) as { status: string }).status).toBe('duplicate');
    }
    const batch = await (await server.request('/v1/trades/batch', { method: 'POST', json: listed })).json();
    expect(batch, `seed ${seed}`).toMatchObject({ received: listed.length, duplicates: listed.length, stored: 0, conflicts: 0, invalid: 0 });

    // The PnL a client recomputes from GET /v1/trades is the report's, to the cent.
    for (const day of new Set(sent.map((s) => s.product.day))) {
      const report = (await (await server.request(`/v1/reports/pnl?trader_id=${trader}&delivery_day=${day}`)).json()) as PnlReport;
      expect(report.total.pnl_eur, `${day} (seed ${seed})`).toBeCloseTo(pnlOf(listed, day), 2);
      expect(report.total.trades).toBe(listed.filter((t) => t.delivery_day === day).length);
    }
  });

  it('does show exactly the file\'s trades in GET /v1/trades after the nightly file with every kind of product is imported', async () => {
    const trader = `rt_file_${seed}`;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'powerdesk-roundtrip-'));
    for (const sub of ['processed', 'rejected']) await mkdir(path.join(dir, sub), { recursive: true });
    const fileTrades: ApiTrade[] = Array.from({ length: 250 }, (_, i) => {
      const product = randomProduct();
      return {
        id: `rtf-${seed}-${i}`, price: randomPriceCents(), quantity: randomQuantity(), direction: rand() < 0.5 ? 'buy' : 'sell',
        delivery_day: product.day, ...product.api, trader_id: trader, execution_time: new Date(product.start.getTime() - 7_200_000).toISOString().replace('.000Z', 'Z'),
      };
    });
    // Columns in another order than the API's, delivery_period empty for the plain hour.
    const lines = ['trader_id,id,delivery_day,delivery_hour,delivery_period,direction,price,quantity,execution_time',
      ...fileTrades.map((t) => [t.trader_id, t.id, t.delivery_day, t.delivery_hour, t.delivery_period ?? '', t.direction, t.price, t.quantity, t.execution_time].join(','))];
    await writeFile(path.join(dir, 'epex_trades_20240101.csv'), `${lines.join('\n')}\n`);
    const importer = new Importer({ dir, apiUrl: server.url, apiUser: service.username, apiPassword: service.password, tz, clock: { now: () => new Date() }, log: createLogger('silent'), batchSize: 40, parallel: 2 });
    try {
      const result = await importer.importFile('epex_trades_20240101.csv');
      if (result.outcome !== 'imported') throw new Error(`unexpected outcome ${result.outcome}`);
      expect(result.import, `seed ${seed}`).toMatchObject({ rows: 250, stored: 250, duplicates: 0, conflicts: 0, rejected: 0 });
    } finally {
      await importer.stop();
    }
    const listed = await getTrades(trader);
    const sortById = (a: ApiTrade, b: ApiTrade) => a.id.localeCompare(b.id);
    expect([...listed].sort(sortById), `seed ${seed}`).toEqual([...fileTrades].sort(sortById));
    // And the same trades posted back through the API are duplicates.
    const batch = await (await server.request('/v1/trades/batch', { method: 'POST', json: listed })).json();
    expect(batch).toMatchObject({ duplicates: 250, stored: 0, conflicts: 0 });
  });
});
