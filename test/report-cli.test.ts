// The terminal report: formatting units, and the real script run as a child process against a
// real server (table, csv, json, --watch, error exits).
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PnlReport } from '../server/live/events';
import { applyUpdate, parseReportArgs, renderCsv, renderTable, signed, useColor } from '../server/reports/format';
import { admin, startTestServer, trade, type TestServer } from './helpers/server';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let server: TestServer;
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startTestServer();
  const res = await server.request('/v1/trades/batch', {
    method: 'POST',
    json: [
      trade({ id: 'c1', trader_id: 'cli_t', delivery_day: '2023-02-08', delivery_hour: 13, direction: 'buy', quantity: 140, price: 1000 }),
      trade({ id: 'c2', trader_id: 'cli_t', delivery_day: '2023-02-08', delivery_hour: 13, direction: 'sell', quantity: 200, price: 925 }),
      trade({ id: 'c3', trader_id: 'cli_t', delivery_day: '2023-02-08', delivery_hour: 17, direction: 'buy', quantity: 63, price: 1200 }),
      trade({ id: 'c4', trader_id: 'cli_t', delivery_day: '2023-02-08', delivery_hour: 17, direction: 'sell', quantity: 34, price: 1870 }),
    ],
  });
  expect(res.status).toBe(200);
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await server?.close();
});

interface Run { code: number | null; stdout: string; stderr: string }

function start(args: string[], env: Record<string, string | undefined> = {}): { child: ChildProcess; output: () => string; done: Promise<Run> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/report.ts', ...args], {
    cwd: root,
    env: { ...process.env, API_URL: `${server.url}/v1`, API_USER: admin.username, API_PASSWORD: admin.password, NO_COLOR: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, output: () => stdout, done };
}

const run = (args: string[], env?: Record<string, string | undefined>) => start(args, env).done;

async function until(condition: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('report formatting', () => {
  it('signs PnL with the sign apart and shows cents only when there are any', () => {
    expect([signed(450), signed(-120), signed(0), signed(12.5), signed(-0.05), signed(4324.3), signed(-0.004)]).toEqual(['+ 450.00', '- 120.00', '0.00', '+ 12.50', '- 0.05', '+ 4,324.30', '0.00']);
  });

  it('parses arguments and names what is wrong', () => {
    expect(parseReportArgs(['--trader', 't', '--day', '2023-02-08'])).toEqual({ ok: true, args: { trader: 't', day: '2023-02-08', format: 'table', watch: false } });
    expect(parseReportArgs(['--trader', 't'])).toEqual({ ok: false, message: '--day is required' });
    expect(parseReportArgs(['--trader', 't', '--day', '2023-02-29'])).toMatchObject({ ok: false, message: expect.stringMatching(/^--day must be a calendar date/) });
    expect(parseReportArgs(['--trader', 't', '--day', '2023-02-08', '--format', 'xml'])).toMatchObject({ ok: false, message: expect.stringMatching(/^--format must be table, csv or json/) });
    expect(parseReportArgs(['--bogus'])).toMatchObject({ ok: false, message: expect.stringMatching(/bogus/) });
  });

  it('colours only on a terminal without NO_COLOR', () => {
    expect(useColor({ isTTY: true }, {})).toBe(true);
    expect(useColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(useColor({ isTTY: false }, {})).toBe(false);
  });

  it('applies a live update to its hour and total only', async () => {
    const report = (await (await server.request('/v1/reports/pnl?trader_id=cli_t&delivery_day=2023-02-08')).json()) as PnlReport;
    const hour = { ...report.hours[5]!, trades: 1, pnl_eur: 7 };
    const total = { ...report.total, trades: 5 };
    const updated = applyUpdate(report, { trader_id: 'cli_t', delivery_day: '2023-02-08', hour, total });
    expect(updated.hours[5]).toEqual(hour);
    expect(updated.hours[13]).toEqual(report.hours[13]);
    expect(updated.total.trades).toBe(5);
    expect(applyUpdate(report, { trader_id: 'other', delivery_day: '2023-02-08', hour, total })).toBe(report);
    expect(renderTable(updated, { color: true })).toContain('\x1b[32m');
    expect(renderCsv(updated).split('\n')[6]).toBe('05-06,1,0,0,7.00');
  });
});

describe('npm run report', () => {
  it('prints the report table with every hour and a signed total', async () => {
    const { code, stdout, stderr } = await run(['--trader', 'cli_t', '--day', '2023-02-08']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('PnL of cli_t on 2023-02-08 (Europe/Berlin)');
    expect(lines[1]!.split(' | ').map((c) => c.trim())).toEqual(['Hour', 'Number of Trades', 'Total BUY [MW]', 'Total Sell [MW]', 'PnL [Eur]']);
    const rows = lines.filter((l) => l.includes(' | ')).slice(1).map((l) => l.split(' | ').map((c) => c.trim()));
    expect(rows).toHaveLength(25); // 24 hours and the total
    expect(rows[0]).toEqual(['00-01', '0', '0.0', '0.0', '0.00']);
    // 13-14: sell 200 x 9.25 - buy 140 x 10 = 450; 17-18: sell 34 x 18.70 - buy 63 x 12 = -120.2
    expect(rows[13]).toEqual(['13-14', '2', '140.0', '200.0', '+ 450.00']);
    expect(rows[17]).toEqual(['17-18', '2', '63.0', '34.0', '- 120.20']);
    expect(rows[24]).toEqual(['Total', '4', '203.0', '234.0', '+ 329.80']);
    expect(stdout).not.toContain('\x1b['); // not a terminal: no colour
  });

  it('does print the quarter hours under their hour and the two autumn 02:00 hours apart', async () => {
    const day = '2023-10-29';
    const res = await server.request('/v1/trades/batch', {
      method: 'POST',
      json: [
        trade({ id: 'cq1', trader_id: 'cli_q', delivery_day: day, delivery_hour: 2, direction: 'sell', quantity: 10, price: 5000 }),
        trade({ id: 'cq2', trader_id: 'cli_q', delivery_day: day, delivery_hour: 2, delivery_period: '02-03B', direction: 'buy', quantity: 1, price: 3000 }),
        trade({ id: 'cq3', trader_id: 'cli_q', delivery_day: day, delivery_hour: 2, delivery_period: '02:15-02:30B', direction: 'sell', quantity: 4, price: 4000 }),
        trade({ id: 'cq4', trader_id: 'cli_q', delivery_day: day, delivery_hour: 9, delivery_period: '09:45-10:00', direction: 'buy', quantity: 8, price: 1000 }),
      ],
    });
    expect((await res.json() as { stored: number }).stored).toBe(4);
    const { code, stdout } = await run(['--trader', 'cli_q', '--day', day]);
    expect(code).toBe(0);
    const rows = stdout.trimEnd().split('\n').filter((l) => l.includes(' | ')).slice(1).map((l) => l.split(' | ').map((c) => c.trimEnd()));
    expect(rows).toHaveLength(25 + 2 + 1 + 1); // 25 hours, 2 products under the second 02:00, 1 under 09-10, the total
    const at = (label: string) => rows.findIndex((r) => r[0]!.trim() === label);
    // The first 02:00 has only its plain hour: no products listed.
    expect(rows[at('02-03 (+02:00)')]!.map((c) => c.trim())).toEqual(['02-03 (+02:00)', '1', '0.0', '10.0', '+ 500.00']);
    const second = at('02-03 (+01:00)');
    // sell 4 MW x 0.25 h x 40 = 40; buy 1 x 30 = -30
    expect(rows.slice(second, second + 3).map((r) => r.map((c) => c.trim()))).toEqual([
      ['02-03 (+01:00)', '2', '1.0', '4.0', '+ 10.00'],
      ['02-03B', '1', '1.0', '0.0', '- 30.00'],
      ['02:15-02:30B', '1', '0.0', '4.0', '+ 40.00'],
    ]);
    expect(rows[second + 1]![0]).toMatch(/^ {2}02-03B/); // indented under its hour
    const nine = at('09-10');
    expect(rows[nine + 1]!.map((c) => c.trim())).toEqual(['09:45-10:00', '1', '8.0', '0.0', '- 20.00']);
    expect(rows.at(-1)!.map((c) => c.trim())).toEqual(['Total', '4', '9.0', '14.0', '+ 490.00']);
  });

  it('prints csv and json', async () => {
    const [csv, json] = await Promise.all([
      run(['--trader', 'cli_t', '--day', '2023-02-08', '--format', 'csv']),
      run(['--trader', 'cli_t', '--day', '2023-02-08', '--format', 'json']),
    ]);
    expect(csv.code).toBe(0);
    const lines = csv.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('hour,number_of_trades,total_buy_mw,total_sell_mw,pnl_eur');
    expect(lines[14]).toBe('13-14,2,140,200,450.00');
    expect(lines[25]).toBe('Total,4,203,234,329.80');
    expect(json.code).toBe(0);
    const api = await (await server.request('/v1/reports/pnl?trader_id=cli_t&delivery_day=2023-02-08')).json();
    expect(JSON.parse(json.stdout)).toEqual(api);
  });

  it('exits 2 with the usage on stderr when the arguments are wrong', async () => {
    const results = await Promise.all([run([]), run(['--trader', 'cli_t', '--day', '08.02.2023']), run(['--trader', 'cli_t', '--day', '2023-02-08', '--format', 'xml'])]);
    for (const r of results) {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^report: .+\nusage: npm run report -- --trader ID --day YYYY-MM-DD/);
    }
    expect(results[1]!.stderr).toMatch(/--day must be a calendar date/);
  });

  it('exits 1 with one clear line when the credentials are wrong or the API is unreachable', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const [wrong, unreachable] = await Promise.all([
      run(['--trader', 'cli_t', '--day', '2023-02-08'], { API_PASSWORD: 'not-the-password' }),
      run(['--trader', 'cli_t', '--day', '2023-02-08'], { API_URL: `http://127.0.0.1:${closedPort}/v1` }),
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe('report: the API refused the credentials (wrong username or password); set API_USER and API_PASSWORD\n');
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toBe(`report: cannot reach the API at http://127.0.0.1:${closedPort} (ECONNREFUSED); is the server running? Set API_URL.\n`);
  });

  it('prints one line per changed hour with --watch when stdout is not a terminal', async () => {
    const watching = start(['--trader', 'cli_w', '--day', '2023-02-08', '--watch']);
    await until(() => watching.output().includes('Total'));
    await until(() => server.hub.io.sockets.adapter.rooms.has('trader:cli_w:2023-02-08'));
    const tableLength = watching.output().length;
    const res = await server.request('/v1/trades', { method: 'POST', json: trade({ id: 'w1', trader_id: 'cli_w', delivery_day: '2023-02-08', delivery_hour: 9, direction: 'sell', quantity: 2, price: 5000 }) });
    expect(res.status).toBe(200);
    await until(() => watching.output().includes('day total'));
    const update = watching.output().slice(tableLength).trimEnd().split('\n');
    // The changed hour and the day's total, each stamped with the market time; not the table again.
    expect(update).toHaveLength(2);
    expect(update[0]).toMatch(/^\d\d:\d\d:\d\d 09-10: 1 trades, buy 0\.0 MW, sell 2\.0 MW, PnL \+ 100\.00$/);
    expect(update[1]).toMatch(/^\d\d:\d\d:\d\d day total: 1 trades, PnL \+ 100\.00$/);
    expect(watching.output().match(/Number of Trades/g)).toHaveLength(1);
    watching.child.kill('SIGTERM');
    expect((await watching.done).code).toBe(0);
  });

  it('redraws the table with the time of the update and how to stop on a terminal', async () => {
    // `script` gives the report a pseudo terminal, as a person running it would have.
    const command = `${process.execPath} --import tsx scripts/report.ts --trader cli_tty --day 2023-02-08 --watch`;
    const watching = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: root, env: { ...process.env, API_URL: server.url, API_USER: admin.username, API_PASSWORD: admin.password, NO_COLOR: '1', TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(watching);
    let out = '';
    watching.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    await until(() => /updated at \d\d:\d\d:\d\d \(market time, Europe\/Berlin\) · Ctrl-C to stop/.test(out));
    await until(() => server.hub.io.sockets.adapter.rooms.has('trader:cli_tty:2023-02-08'));
    const res = await server.request('/v1/trades', { method: 'POST', json: trade({ id: 'tty1', trader_id: 'cli_tty', delivery_day: '2023-02-08', delivery_hour: 9, direction: 'sell', quantity: 2, price: 5000 }) });
    expect(res.status).toBe(200);
    await until(() => /^Total \s*\|\s+1 \|\s+0\.0 \|\s+2\.0 \|\s+\+ 100\.00\r?$/m.test(out));
    const redraws = out.split('\x1b[2J');
    expect(redraws.length).toBeGreaterThanOrEqual(3); // drawn, then redrawn in place
    expect(redraws.at(-1)).toMatch(/^\x1b\[H/);
    expect(redraws.at(-1)).toMatch(/^09-10 \s*\|\s+1 \|\s+0\.0 \|\s+2\.0 \|\s+\+ 100\.00\r?$/m);
    expect(redraws.at(-1)).toMatch(/updated at \d\d:\d\d:\d\d \(market time, Europe\/Berlin\) · Ctrl-C to stop/);
    watching.kill('SIGTERM');
  });

  it('takes API_URL with or without /v1, and names the URL and content type of an answer that is not JSON', async () => {
    const html = await new Promise<http.Server>((resolve) => {
      const s = http.createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }); res.end('<!doctype html><html><body>app</body></html>'); });
      s.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const htmlUrl = `http://127.0.0.1:${(html.address() as net.AddressInfo).port}`;
      const [bare, slash, v1, page] = await Promise.all([
        run(['--trader', 'cli_t', '--day', '2023-02-08', '--format', 'csv'], { API_URL: server.url }),
        run(['--trader', 'cli_t', '--day', '2023-02-08', '--format', 'csv'], { API_URL: `${server.url}/` }),
        run(['--trader', 'cli_t', '--day', '2023-02-08', '--format', 'csv'], { API_URL: `${server.url}/v1/` }),
        run(['--trader', 'cli_t', '--day', '2023-02-08'], { API_URL: htmlUrl }),
      ]);
      for (const r of [bare, slash, v1]) {
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout.split('\n')[25]).toBe('Total,4,203,234,329.80');
      }
      expect(page.code).toBe(1);
      expect(page.stderr).toBe(`report: ${htmlUrl}/v1/reports/pnl answered 200 with text/html; charset=utf-8, not JSON; API_URL must be the powerdesk server, e.g. http://localhost:8080\n`);
      const bad = await run(['--trader', 'cli_t', '--day', '2023-02-08'], { API_URL: 'localhost:8080' });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^report: API_URL: must be an http:\/\/ or https:\/\/ URL/);
    } finally {
      html.close();
    }
  });
});
