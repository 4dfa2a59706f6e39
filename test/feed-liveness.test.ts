// Gateway liveness across processes, on a TimescaleDB server (TEST_TIMESCALE_URL): a gateway
// process killed with -9 is seen as gone at once by every other process (it held an advisory
// lock the database dropped with its connection), a restart under the same id takes over its
// row, and a second live gateway under that id is refused.
import { afterAll, describe, expect, it } from 'vitest';
import { startExchangeSim } from '../scripts/exchange-sim';
import { sql, type Db } from '../server/db';
import { openServer } from '../server/db/server';
import { migrate } from '../server/db/migrate';
import { feedStatus } from '../server/feed/status';
import { freshTimescaleDatabase } from './helpers/databases';
import { startGatewayProcess, type ServerProcess } from './helpers/process';
import { until } from './helpers/wait';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => { while (cleanup.length) await cleanup.pop()!().catch(() => {}); });

const fresh = await freshTimescaleDatabase('liveness', 'test/feed-liveness.test.ts (gateway liveness across processes)');
if (fresh) cleanup.push(() => fresh.drop());
const url = fresh?.url;

describe.skipIf(!url)('gateway liveness across processes (TimescaleDB server)', () => {
  it('says disconnected at once when the gateway process is killed with -9, and a restart under its id takes its row over', async () => {
    const db: Db = await openServer(url!);
    cleanup.push(() => db.close());
    await migrate(db);
    const sim = await startExchangeSim({ idPrefix: `live${Date.now().toString(36)}` });
    cleanup.push(() => sim.close());
    const id = `liveness-${Date.now().toString(36)}`;
    const env = { DATABASE_URL: url!, EXCHANGE_WS_URL: sim.url, FEED_GATEWAY_ID: id, EXCHANGE_MEMBER: id, FEED_HEARTBEAT_MS: '1000', LOG_LEVEL: 'info' };
    const mine = async () => {
      const [row] = await db.query<{ stored: number }>(sql`SELECT stored FROM feed_gateways WHERE gateway_id = ${id}`);
      return row;
    };
    let gateway: ServerProcess = await startGatewayProcess(env);
    cleanup.push(() => gateway.kill());
    await until(async () => (await feedStatus(db, 'Europe/Berlin', new Date())).connected, 'connected, seen from this process', 20_000);
    for (let i = 0; i < 20; i++) sim.sendDeal();
    await until(async () => (await mine())?.stored === 20, '20 stored');

    await gateway.kill();
    const killedAt = Date.now();
    await until(async () => !(await feedStatus(db, 'Europe/Berlin', new Date())).connected, 'disconnected, seen from this process', 20_000);
    expect(Date.now() - killedAt).toBeLessThan(10_000); // not after the 30 s a stale beat takes

    gateway = await startGatewayProcess(env);
    await until(async () => (await feedStatus(db, 'Europe/Berlin', new Date())).connected, 'connected again', 20_000);
    const twin = await startGatewayProcess(env).then(() => 'started', (error: Error) => error.message);
    expect(twin).toMatch(/FEED_GATEWAY_ID: gateway id .* is in use by a gateway that is running/);
    expect(await db.query(sql`SELECT gateway_id FROM feed_gateways WHERE gateway_id = ${id}`)).toHaveLength(1);
    expect((await mine())?.stored).toBe(20); // counting on in the same row
    const open = await db.query<{ state: string }>(sql`SELECT state FROM feed_intervals WHERE gateway_id = ${id} AND ended_at IS NULL`);
    expect(open).toEqual([{ state: 'connected' }]); // the killed process's interval was closed
    await gateway.stop();
  }, 120_000);
});
