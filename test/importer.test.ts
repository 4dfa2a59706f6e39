// The nightly file importer end to end: real files in temp directories, the real server and
// REST API on an embedded TimescaleDB, the importer in process and as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdtemp, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseCsv } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { sql } from '../server/db';
import { Importer, type ImportOutcome } from '../server/importer/importer';
import { createLogger } from '../server/log';
import { checkApiTrade, type TradeRow } from '../server/trades/normalize';
import { ingestTrades } from '../server/trades/store';
import { recallDeals } from '../server/trades/recalls';
import { basic, startTestServer, trade, type TestServer } from './helpers/server';

const tz = 'Europe/Berlin';
const service = { username: 'importer', password: 'importer-password' };
const header = 'id,price,quantity,direction,delivery_day,delivery_hour,trader_id,execution_time';
let server: TestServer;
const importers: Importer[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startTestServer();
  await addUser(server.deps.db, { ...service, role: 'service' });
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const importer of importers) await importer.stop();
  await server?.close();
});

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'powerdesk-import-'));
}

function importer(dir: string, options: Partial<ConstructorParameters<typeof Importer>[0]> = {}): Importer {
  const created = new Importer({
    dir, apiUrl: server.url, apiUser: service.username, apiPassword: service.password, tz,
    clock: { now: () => new Date() }, log: createLogger(process.env.TEST_LOG === '1' ? 'debug' : 'silent'), settleMs: 300, rescanMs: 100, batchSize: 50, parallel: 2,
    retryInitialMs: 50, retryMaxMs: 200, ...options,
  });
  importers.push(created);
  return created;
}

/** Resolves with the outcome of the next `count` files the importer finishes. */
function nextFiles(imp: Importer, count = 1): Promise<Map<string, ImportOutcome>> {
  return new Promise((resolve, reject) => {
    const seen = new Map<string, ImportOutcome>();
    const off = imp.onFile((name, result) => {
      if (result instanceof Error) { off(); reject(result); return; }
      seen.set(`${name}#${seen.size}`, result);
      if (seen.size === count) { off(); resolve(seen); }
    });
  });
}

const first = async (p: Promise<Map<string, ImportOutcome>>) => [...(await p).values()][0]!;

/** CSV data lines: n valid trades with ids `${prefix}-${i}` of one trader. */
function rows(prefix: string, n: number, trader: string, day = '2023-02-20', from = 0): string[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    return `${prefix}-${i},${2000 + (i % 500)},${(1 + (i % 7) / 10).toFixed(1)},${i % 2 ? 'sell' : 'buy'},${day},${i % 24},${trader},${day}T${String(i % 24).padStart(2, '0')}:0${i % 6}:00Z`;
  });
}

async function countTrades(trader: string): Promise<number> {
  const res = await server.request(`/v1/trades?trader_id=${trader}`);
  return ((await res.json()) as unknown[]).length;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type ImportRow = { id: number; file_name: string; status: string; rows: number | null; stored: number; duplicates: number; conflicts: number; rejected: number | null; same_as: number | null };

async function importsOf(day: string): Promise<ImportRow[]> {
  const res = await server.request(`/v1/imports?day=${day}`);
  expect(res.status).toBe(200);
  return (await res.json()) as ImportRow[];
}

const json = async (res: Response): Promise<any> => res.json();

describe('file arrival', () => {
  it('imports a file written in several slow chunks once, complete', async () => {
    const dir = await tempDir();
    const imp = importer(dir, { settleMs: 600 });
    await imp.start();
    const done = nextFiles(imp);
    const text = `${header}\n${rows('chunk', 300, 'chunky', '2023-01-10').join('\n')}\n`;
    const file = path.join(dir, 'epex_trades_20230110.csv');
    // Cuts in the middle of lines, with pauses shorter than the settle period.
    const cuts = [0, 1234, 5001, 9999, 13_333, text.length];
    for (let i = 0; i < cuts.length - 1; i += 1) {
      await appendFile(file, text.slice(cuts[i], cuts[i + 1]));
      await new Promise((r) => setTimeout(r, 150));
    }
    const result = await first(done);
    expect(result.outcome).toBe('imported');
    const records = await importsOf('2023-01-10');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ status: 'done', rows: 300, stored: 300, duplicates: 0, rejected: 0 });
    expect(await countTrades('chunky')).toBe(300);
    expect(await readdir(path.join(dir, 'processed'))).toEqual(['epex_trades_20230110.csv']);
    expect(await readdir(dir)).not.toContain('epex_trades_20230110.csv');
  });

  it('imports the files already present when it starts, and ignores other names', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'epex_trades_20230111.csv'), `${header}\n${rows('early-a', 20, 'early', '2023-01-11').join('\n')}\n`);
    await writeFile(path.join(dir, 'epex_trades_20230112.csv'), `${header}\n${rows('early-b', 30, 'early', '2023-01-12').join('\n')}\n`);
    await writeFile(path.join(dir, 'epex_trades_20230113.csv.tmp'), `${header}\n${rows('early-c', 5, 'early', '2023-01-13').join('\n')}\n`);
    const imp = importer(dir);
    const done = nextFiles(imp, 2);
    await imp.start();
    const results = [...(await done).values()];
    expect(results.map((r) => r.outcome)).toEqual(['imported', 'imported']);
    expect(await countTrades('early')).toBe(50);
    expect((await readdir(path.join(dir, 'processed'))).sort()).toEqual(['epex_trades_20230111.csv', 'epex_trades_20230112.csv']);
    // The writer's rename finishes the delivery: then it is imported.
    const next = nextFiles(imp);
    await rename(path.join(dir, 'epex_trades_20230113.csv.tmp'), path.join(dir, 'epex_trades_20230113.csv'));
    expect((await first(next)).outcome).toBe('imported');
    expect(await countTrades('early')).toBe(55);
  });

  it('does nothing but record it when an identical file is delivered twice', async () => {
    const dir = await tempDir();
    const imp = importer(dir);
    await imp.start();
    const content = `${header}\n${rows('twice', 40, 'twice', '2023-01-14').join('\n')}\n`;
    let done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230114.csv'), content);
    const firstResult = await first(done);
    expect(firstResult.outcome).toBe('imported');
    done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230114.csv'), content);
    const second = await first(done);
    expect(second.outcome).toBe('identical');
    if (second.outcome !== 'identical' || firstResult.outcome !== 'imported') throw new Error('unexpected');
    expect(second.same_as.id).toBe(firstResult.import.id);
    const records = await importsOf('2023-01-14');
    expect(records.map((r) => [r.status, r.same_as])).toEqual([['identical', firstResult.import.id], ['done', null]]);
    expect(records[0]!.stored + records[0]!.duplicates).toBe(0);
    expect(await countTrades('twice')).toBe(40);
    expect((await readdir(path.join(dir, 'processed'))).sort()).toEqual(['epex_trades_20230114.csv', `epex_trades_20230114.import-${second.import.id}.csv`]);
  });

  it('stores only the new row when the same file arrives again with one more row', async () => {
    const dir = await tempDir();
    const imp = importer(dir);
    await imp.start();
    const lines = rows('grow', 41, 'grower', '2023-01-15');
    let done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230115.csv'), `${header}\n${lines.slice(0, 40).join('\n')}\n`);
    await done;
    done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230115.csv'), `${header}\n${lines.join('\n')}\n`);
    const second = await first(done);
    expect(second.outcome).toBe('imported');
    expect(second.outcome === 'imported' && second.import).toMatchObject({ rows: 41, stored: 1, duplicates: 40, conflicts: 0 });
    expect(await countTrades('grower')).toBe(41);
  });

  it('reads the file again, storing only what is new, when it grows while being read', async () => {
    const dir = await tempDir();
    const day = '2023-01-23';
    const imp = importer(dir, { batchSize: 50, parallel: 1 });
    await imp.start();
    const done = nextFiles(imp, 2);
    const file = path.join(dir, 'epex_trades_20230123.csv');
    await writeFile(file, `${header}\n${rows('growing', 5000, 'growing', day).join('\n')}\n`);
    await waitFor('the reading to be under way', async () => ((await importsOf(day))[0]?.stored ?? 0) >= 500);
    await appendFile(file, `${rows('growing', 1, 'growing', day, 5000)[0]}\n`);
    const [changed, imported] = [...(await done).values()];
    expect(changed!.outcome).toBe('changed');
    expect(imported!.outcome).toBe('imported');
    if (imported!.outcome !== 'imported') throw new Error('unexpected');
    expect(imported!.import.rows).toBe(5001);
    expect(imported!.import.stored + imported!.import.duplicates).toBe(5001);
    expect((await importsOf(day)).map((r) => r.status)).toEqual(['done', 'failed']);
    expect(await countTrades('growing')).toBe(5001);
  }, 90_000); // 200 batches, and the importer's credentials hashed again every 30 s (scrypt N=2^17)
});

describe('validation', () => {
  it.each([
    ['CRLF', '\r\n', '2023-01-16', 'badrows'],
    ['LF', '\n', '2023-01-22', 'badrowslf'],
  ])('writes malformed rows with their line numbers and reasons to the rejects file and stores the valid ones when lines end with %s', async (_name, eol, day, trader) => {
    const dir = await tempDir();
    const imp = importer(dir);
    await imp.start();
    const ok = (id: string, extra = '') => `${id},2050,12.3,buy,${day},8,${trader},${day}T06:13:45Z${extra}`;
    const lines = [
      `\ufeff${header}`, //                                                           1 (BOM)
      ok(`${trader}-ok1`), //                                                               2
      `${trader}-dir,2050,12.3,hold,${day},8,${trader},${day}T06:13:45Z`, //                  3 unknown direction
      `${trader}-neg,2050,-5,buy,${day},8,${trader},${day}T06:13:45Z`, //                     4 negative quantity
      `${trader}-nan,2050,12abc,buy,${day},8,${trader},${day}T06:13:45Z`, //                  5 non-numeric quantity
      `${trader}-date,2050,12.3,buy,2023-02-30,8,${trader},${day}T06:13:45Z`, //              6 bad date
      `${trader}-h24,2050,12.3,buy,${day},24,${trader},${day}T06:13:45Z`, //                  7 hour 24
      `${trader}-missing,2050,12.3,buy,${day},8,${trader}`, //                                8 missing column
      ok(`${trader}-extra`, ',surplus'), //                                                 9 extra column
      '', //                                                                          10 empty line
      `"${trader}-quoted","2050","12.3","sell","${day}","9","${trader}","${day}T07:00:00Z"`, // 11 quoted fields: valid
      `"${trader} id",2050,12.3,buy,${day},8,${trader},${day}T06:13:45Z`, //                  12 quoted, with a space: invalid id
      `${trader}-cents,20.5,12.3,buy,${day},8,${trader},${day}T06:13:45Z`, //                 13 price not in whole cents
      `${trader}-ml,2050,12.3,buy,${day},8,"multi${eol}line",${day}T06:13:45Z`, //     14-15 quoted field over two lines: invalid trader_id
      ok(`${trader}-ok2`), //                                                               16
    ];
    const done = nextFiles(imp);
    await writeFile(path.join(dir, `epex_trades_${day.replaceAll('-', '')}.csv`), `${lines.join(eol)}${eol}`);
    const result = await first(done);
    expect(result.outcome).toBe('imported');
    if (result.outcome !== 'imported') throw new Error('unexpected');
    expect(result.import).toMatchObject({ rows: 13, stored: 3, rejected: 10 });
    const list = (await (await server.request(`/v1/trades?trader_id=${trader}`)).json()) as { id: string }[];
    expect(list.map((t) => t.id).sort()).toEqual([`${trader}-ok1`, `${trader}-ok2`, `${trader}-quoted`]);

    const rejectsText = await readFile(result.rejectsFile!, 'utf8');
    expect(rejectsText.split('\n')[0]).toBe(`line,reason,${header}`);
    const rejects = parseCsv(rejectsText, { relax_column_count: true, from_line: 2 }) as string[][];
    const byLine = new Map(rejects.map((r) => [Number(r[0]), r]));
    expect([...byLine.keys()]).toEqual([3, 4, 5, 6, 7, 8, 9, 12, 13, 14]);
    const reason = (line: number) => byLine.get(line)![1];
    expect(reason(3)).toBe('direction: must be "buy" or "sell" (got "hold")');
    expect(reason(4)).toBe('quantity: must be greater than 0 MW (got -5)');
    expect(reason(5)).toBe('quantity: must be a decimal number (got "12abc")');
    expect(reason(6)).toBe('delivery_day: must be a calendar date YYYY-MM-DD (got "2023-02-30")');
    expect(reason(7)).toBe('delivery_hour: must be from 0 to 23 (got 24)');
    expect(reason(8)).toBe('has 7 fields, the header has 8');
    expect(reason(9)).toBe('has 9 fields, the header has 8');
    expect(reason(12)).toBe('id: must be printable ASCII without spaces');
    expect(reason(13)).toBe('price: must be an integer (got "20.5")');
    expect(reason(14)).toBe('trader_id: must be printable ASCII without spaces');
    // The original row stands beside the line number and the reason.
    expect(byLine.get(3)!.slice(2)).toEqual([`${trader}-dir`, '2050', '12.3', 'hold', day, '8', trader, `${day}T06:13:45Z`]);
    expect(byLine.get(14)!.slice(2)).toEqual([`${trader}-ml`, '2050', '12.3', 'buy', day, '8', `multi${eol}line`, `${day}T06:13:45Z`]);
  });

  it('refuses the whole file with a clear message when the header lacks a column', async () => {
    const dir = await tempDir();
    const imp = importer(dir);
    await imp.start();
    const done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230117.csv'), `id,price,quantity,direction,delivery_day,delivery_hour,trader,execution_time\nx,1,1,buy,2023-01-17,1,t,2023-01-17T00:00:00Z\n`);
    const result = await first(done);
    expect(result.outcome).toBe('refused');
    if (result.outcome !== 'refused') throw new Error('unexpected');
    expect(result.message).toBe('line 1 (header): missing column trader_id; unknown column "trader"; expected id,price,quantity,direction,delivery_day,delivery_hour,trader_id,execution_time (and optionally delivery_period)');
    expect(result.import.status).toBe('failed');
    expect((await readdir(path.join(dir, 'rejected'))).sort()).toEqual(['epex_trades_20230117.csv', 'epex_trades_20230117.csv.error.txt']);
  });

  it('accepts the columns in another order', async () => {
    const dir = await tempDir();
    const imp = importer(dir);
    await imp.start();
    const done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230118.csv'), `trader_id,id,execution_time,price,quantity,direction,delivery_day,delivery_hour\norder,order-1,2023-01-18T05:00:00Z,-150,0.5,sell,2023-01-18,23\n`);
    expect((await first(done)).outcome).toBe('imported');
    const list = await (await server.request('/v1/trades?trader_id=order')).json();
    expect(list).toEqual([{ id: 'order-1', price: -150, quantity: 0.5, direction: 'sell', delivery_day: '2023-01-18', delivery_hour: 23, trader_id: 'order', execution_time: '2023-01-18T05:00:00Z' }]);
  });
});

describe('source=file on the batch endpoint', () => {
  it('stores importer trades as source file and refuses source=file to a trader', async () => {
    await addUser(server.deps.db, { username: 'filetrader', password: 'filetrader-pw', role: 'trader', trader_id: 'ft' });
    const refused = await server.request('/v1/trades/batch?source=file', { method: 'POST', json: [trade({ id: 'ft-1', trader_id: 'ft' })], auth: basic('filetrader', 'filetrader-pw') });
    expect(refused.status).toBe(403);
    expect((await json(refused)).message).toBe('source: role trader may not store trades as source=file (service or admin only)');
    const heard: string[] = [];
    const unlisten = await server.deps.db.listen('trades_stored', (payload) => heard.push(payload));
    const ok = await server.request('/v1/trades/batch?source=file', { method: 'POST', json: [trade({ id: 'ft-2', trader_id: 'ft' })], auth: basic(service.username, service.password) });
    expect(ok.status).toBe(200);
    // Live listeners hear of it as a file trade, in the API's shape.
    await waitFor('the NOTIFY', () => heard.find((p) => p.includes('"ft-2"')));
    await unlisten();
    expect(JSON.parse(heard.find((p) => p.includes('"ft-2"'))!)).toEqual({ source: 'file', trades: [trade({ id: 'ft-2', trader_id: 'ft' })] });
    const [row] = await server.deps.db.query<{ source: string }>(sql`SELECT source FROM trades WHERE id = ${'ft-2'}`);
    expect(row!.source).toBe('file');
  });
});

/** A TCP relay in front of the server: "down" refuses connections and cuts the open ones. */
class Relay {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: number) {}
  up(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => { client.destroy(); upstream.destroy(); });
      }
      client.pipe(upstream).pipe(client);
    });
    return new Promise((resolve) => this.server!.listen(this.port, '127.0.0.1', () => { this.port = (this.server!.address() as net.AddressInfo).port; resolve(); }));
  }
  down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server!.close(() => resolve()));
  }
}

describe('resilience', () => {
  it('waits for the API and loses or doubles nothing when the API is down before and during an import', async () => {
    const relay = new Relay(server.port);
    await relay.up();
    await relay.down(); // the API is down when the file arrives
    const dir = await tempDir();
    const imp = importer(dir, { apiUrl: `http://127.0.0.1:${relay.port}`, batchSize: 20, parallel: 2 });
    await imp.start();
    const done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230119.csv'), `${header}\n${rows('down', 2000, 'downer', '2023-01-19').join('\n')}\n`);
    await waitFor('the importer to notice the API is down', () => !imp.api.state.reachable);
    expect(await imp.problem()).toMatch(/unreachable/);
    await relay.up();
    // ... and down again in the middle of the file.
    await waitFor('some batches stored', async () => ((await importsOf('2023-01-19'))[0]?.stored ?? 0) >= 200);
    await relay.down();
    await waitFor('the importer to notice again', () => !imp.api.state.reachable);
    await relay.up();
    const result = await first(done);
    expect(result.outcome).toBe('imported');
    expect(result.outcome === 'imported' && result.import.rows).toBe(2000);
    expect(result.outcome === 'imported' && result.import.stored + result.import.duplicates).toBe(2000);
    expect(await countTrades('downer')).toBe(2000);
    await relay.down();
  }, 90_000);

  it('resumes and completes the file when the importer process is killed mid-file and restarted', async () => {
    const dir = await tempDir();
    const day = '2023-01-21';
    const total = 30_000;
    await writeFile(path.join(dir, 'epex_trades_20230121.csv'), `${header}\n${rows('kill', total, 'killed', day).join('\n')}\n`);
    const spawnImporter = () => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/importer.ts'], {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        env: {
          ...process.env, IMPORT_DIR: dir, API_URL: server.url, API_USER: service.username, API_PASSWORD: service.password,
          IMPORT_SETTLE_MS: '100', IMPORT_RESCAN_MS: '200', IMPORT_BATCH_SIZE: '250', IMPORT_PARALLEL: '1', IMPORTER_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let output = '';
      child.stdout!.on('data', (d) => { output += String(d); });
      child.stderr!.on('data', (d) => { output += String(d); });
      return { child, output: () => output };
    };
    const firstRun = spawnImporter();
    const running = await waitFor('a part of the file stored', async () => {
      const [record] = await importsOf(day);
      return record && record.status === 'running' && record.stored >= 2000 ? record : undefined;
    });
    firstRun.child.kill('SIGKILL');
    await new Promise((r) => firstRun.child.once('exit', r));
    const partial = (await importsOf(day))[0]!;
    expect(partial.status).toBe('running');
    expect(partial.stored).toBeLessThan(total);

    const secondRun = spawnImporter();
    const finished = await waitFor('the import to finish', async () => {
      const [record] = await importsOf(day);
      return record?.status === 'done' ? record : undefined;
    }, 120_000);
    secondRun.child.kill('SIGTERM');
    expect(finished.id).toBe(running.id);
    expect(await importsOf(day)).toHaveLength(1);
    expect(finished.rows).toBe(total);
    expect(finished.stored + finished.duplicates).toBe(total);
    expect(await countTrades('killed')).toBe(total);
    expect(secondRun.output()).toContain('resuming an unfinished import');
  }, 180_000); // its own waits allow 120 s for the second run: the 30 s default would cut them short on a loaded machine
});

function feedRow(overrides: Record<string, unknown>): TradeRow {
  const checked = checkApiTrade(trade(overrides), tz);
  if (!checked.ok) throw new Error(checked.message);
  return checked.value;
}

describe('reconciliation', () => {
  it('finds the trade the feed missed, the feed trade the file lacks and a differing price', async () => {
    const day = '2023-03-01';
    const common = { trader_id: 'recon', delivery_day: '2023-03-02', delivery_hour: 10 };
    await ingestTrades(server.deps.db, [
      feedRow({ ...common, id: 'rc-same', price: 4000, execution_time: '2023-03-01T09:00:00Z' }),
      feedRow({ ...common, id: 'rc-price', price: 5000, execution_time: '2023-03-01T09:30:00Z' }),
      feedRow({ ...common, id: 'rc-feedonly', price: 4200, execution_time: '2023-03-01T22:30:00Z' }), // 23:30 Berlin: still that day
      feedRow({ ...common, id: 'rc-nextday', price: 4200, execution_time: '2023-03-01T23:30:00Z' }), // 00:30 Berlin next day
    ], 'feed', tz, new Date());
    const dir = await tempDir();
    const printed: string[] = [];
    const imp = importer(dir, { print: (t) => printed.push(t) });
    await imp.start();
    const done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230301.csv'), [
      header,
      'rc-same,4000,12.3,buy,2023-03-02,10,recon,2023-03-01T09:00:00Z',
      'rc-price,5100,12.3,buy,2023-03-02,10,recon,2023-03-01T09:30:00Z',
      'rc-fileonly,4100,12.3,buy,2023-03-02,10,recon,2023-03-01T11:00:00Z',
    ].join('\n') + '\n');
    const result = await first(done);
    if (result.outcome !== 'imported') throw new Error(`unexpected ${result.outcome}`);
    expect(result.import).toMatchObject({ stored: 1, duplicates: 1, conflicts: 1 });
    const expected = {
      import_id: result.import.id, file_name: 'epex_trades_20230301.csv', trading_day: day,
      file_trades: 3, feed_trades: 3, matched: 1, only_in_file: 1, only_in_feed: 1, different: 1,
      items: { only_in_file: ['rc-fileonly'], only_in_feed: ['rc-feedonly'], different: [{ trade_id: 'rc-price', fields: [{ field: 'price', file: 5100, feed: 5000 }] }] },
      truncated: false,
    };
    expect(result.reconciliation).toMatchObject(expected);
    const byDay = await json(await server.request(`/v1/reconciliations?day=${day}`));
    expect(byDay).toHaveLength(1);
    expect(byDay[0]).toMatchObject(expected);
    const byImport = await (await server.request(`/v1/imports/${result.import.id}/reconciliation`)).json();
    expect(byImport).toMatchObject(expected);
    expect(printed.join('\n')).toContain('rc-price: price file 5100 vs feed 5000');
  });

  it('does count a file that writes a feed quarter hour as its plain hour as a conflict and list it as different by delivery_period', async () => {
    const day = '2023-03-03';
    const quarter = { trader_id: 'recon_q', delivery_day: '2023-03-04', delivery_hour: 8, delivery_period: '08:15-08:30' };
    await ingestTrades(server.deps.db, [
      feedRow({ ...quarter, id: 'rq-same', execution_time: '2023-03-03T09:00:00Z' }),
      feedRow({ ...quarter, id: 'rq-hour', execution_time: '2023-03-03T09:30:00Z' }),
      feedRow({ ...quarter, id: 'rq-b', delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02-03B', execution_time: '2023-03-03T10:00:00Z' }),
    ], 'feed', tz, new Date());
    const dir = await tempDir();
    const imp = importer(dir);
    await imp.start();
    const done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230303.csv'), [
      `${header},delivery_period`,
      'rq-same,2050,12.3,buy,2023-03-04,8,recon_q,2023-03-03T09:00:00Z,08:15-08:30',
      'rq-hour,2050,12.3,buy,2023-03-04,8,recon_q,2023-03-03T09:30:00Z,',
      'rq-b,2050,12.3,buy,2023-10-29,2,recon_q,2023-03-03T10:00:00Z,',
    ].join('\n') + '\n');
    const result = await first(done);
    if (result.outcome !== 'imported') throw new Error(`unexpected ${result.outcome}`);
    expect(result.import).toMatchObject({ stored: 0, duplicates: 1, conflicts: 2 });
    expect(result.reconciliation).toMatchObject({
      file_trades: 3, feed_trades: 3, matched: 1, only_in_file: 0, only_in_feed: 0, different: 2,
      items: {
        different: [
          { trade_id: 'rq-b', fields: [{ field: 'delivery_period', file: null, feed: '02-03B' }] },
          { trade_id: 'rq-hour', fields: [{ field: 'delivery_period', file: null, feed: '08:15-08:30' }] },
        ],
      },
    });
  });

  it('expects a recalled feed deal to be absent from the file when the exchange recalled it', async () => {
    const day = '2023-03-04';
    const common = { trader_id: 'recon_recall', delivery_day: '2023-03-05', delivery_hour: 10 };
    await ingestTrades(server.deps.db, [
      feedRow({ ...common, id: 'rr-kept', price: 4000, execution_time: '2023-03-04T09:00:00Z' }),
      feedRow({ ...common, id: 'rr-recalled', price: 5000, execution_time: '2023-03-04T09:30:00Z' }),
    ], 'feed', tz, new Date());
    await server.deps.db.transaction((tx) => recallDeals(tx, [{ id: 'rr-recalled', reason: 'mistrade', recalledAt: new Date() }], 'feed', tz));
    const dir = await tempDir();
    const printed: string[] = [];
    const imp = importer(dir, { print: (t) => printed.push(t) });
    await imp.start();
    const done = nextFiles(imp);
    await writeFile(path.join(dir, 'epex_trades_20230304.csv'), `${header}\nrr-kept,4000,12.3,buy,2023-03-05,10,recon_recall,2023-03-04T09:00:00Z\n`);
    const result = await first(done);
    if (result.outcome !== 'imported') throw new Error(`unexpected ${result.outcome}`);
    expect(result.reconciliation).toMatchObject({
      trading_day: day, file_trades: 1, feed_trades: 1, matched: 1, only_in_file: 0, only_in_feed: 0, different: 0, recalled: 1,
      items: { only_in_file: [], only_in_feed: [], different: [] },
    });
    expect(printed.join('\n')).toContain('1 recalled by the exchange (not expected in the file)');
  });

  it('describes the import and reconciliation endpoints in the OpenAPI document', async () => {
    const doc = await json(await server.request('/v1/openapi.json'));
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/imports', '/v1/imports/{id}', '/v1/imports/{id}/finish', '/v1/imports/{id}/reconciliation', '/v1/reconciliations']));
    expect(Object.keys(doc.paths['/v1/reconciliations'])).toEqual(['get', 'post']);
    const batchParams = (doc.paths['/v1/trades/batch'].post.parameters as { name: string }[]).map((p) => p.name);
    expect(batchParams).toEqual(['source', 'import_id', 'first_line', 'last_line']);
    expect(doc.components.schemas.Reconciliation.properties.items.properties.different).toBeDefined();
  });

  it('answers 400 when neither day nor import is given', async () => {
    const res = await server.request('/v1/reconciliations');
    expect(res.status).toBe(400);
    expect((await json(res)).message).toBe('day: give day=YYYY-MM-DD or import_id');
  });
});

describe('missing-file alert', () => {
  it('reports the missing file in /readyz of the server after the deadline until the file arrives', async () => {
    const dir = await tempDir();
    let now = new Date('2023-03-10T00:30:00Z'); // 01:30 in Berlin: before the 02:00 deadline
    const inProcess = await startTestServer({
      db: server.deps.db, clock: { now: () => now },
      env: { IMPORT_DIR: dir, API_USER: service.username, API_PASSWORD: service.password, IMPORT_SETTLE_MS: '100', IMPORT_RESCAN_MS: '100', IMPORT_DEADLINE: '02:00' },
    });
    try {
      const imp = inProcess.importer!;
      let done = nextFiles(imp);
      await writeFile(path.join(dir, 'epex_trades_20230308.csv'), `${header}\n${rows('dl-a', 3, 'deadline', '2023-03-08').join('\n')}\n`);
      expect((await first(done)).outcome).toBe('imported');
      expect((await inProcess.request('/readyz', { auth: null })).status).toBe(200);

      now = new Date('2023-03-10T01:01:00Z'); // 02:01 in Berlin
      const late = await inProcess.request('/readyz', { auth: null });
      expect(late.status).toBe(503);
      expect((await json(late)).problems.importer).toBe('no file epex_trades_20230309.csv for trading day 2023-03-09 has arrived, due by 02:00 Europe/Berlin');

      done = nextFiles(imp);
      await writeFile(path.join(dir, 'epex_trades_20230309.csv'), `${header}\n${rows('dl-b', 3, 'deadline', '2023-03-09').join('\n')}\n`);
      expect((await first(done)).outcome).toBe('imported');
      expect((await inProcess.request('/readyz', { auth: null })).status).toBe(200);
    } finally {
      await inProcess.close();
    }
  });
});
