// The dashboard end to end in real Chromium: the real server with the built dashboard, sign-in
// through the form, the report table against hand-computed values, then a deal arriving on the
// exchange feed changes the row and the total without a reload. Screenshots go to test-output/.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { addUser } from '../server/auth/users';
import { ensureWebBuild, root } from '../scripts/build-web';
import { startExchangeSim, type ExchangeSim } from '../scripts/exchange-sim';
import { startTestServer, trade, type TestServer } from './helpers/server';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(chromiumPath);
const outputDir = path.join(root, 'test-output');
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];

if (!haveChromium) {
  const line = '!'.repeat(100);
  process.stderr.write(`\n${line}\n!! dashboard.e2e: Chromium not found at ${chromiumPath}: the browser tests are ${process.env.CI ? 'FAILING (CI is set)' : 'SKIPPED'}.\n!! Install it with: apt-get install -y chromium   (or set CHROMIUM_PATH)\n${line}\n\n`);
}

describe('dashboard in Chromium: Chromium itself', () => {
  it.runIf(process.env.CI)('does find Chromium when CI is set (the browser suite must not skip there)', () => {
    expect(haveChromium, `Chromium missing at ${chromiumPath}`).toBe(true);
  });
});

const day = '2023-02-06';
const traderId = 'trader_e2e';
const trader = { username: 'ada', password: 'ada-secret-password' };

interface PostedDeal { id: string; price: number; quantity: number; direction: 'buy' | 'sell'; delivery_hour: number }

/** The expected PnL per hour, computed here independently of the server (eurocent integers). */
function expected(deals: PostedDeal[], hour: number | 'total') {
  const rows = deals.filter((d) => hour === 'total' || d.delivery_hour === hour);
  let pnlCents = 0;
  let buy = 0;
  let sell = 0;
  for (const d of rows) {
    const valueCents = Math.round(d.price * d.quantity);
    if (d.direction === 'sell') { pnlCents += valueCents; sell += d.quantity; } else { pnlCents -= valueCents; buy += d.quantity; }
  }
  return { trades: rows.length, buy_mw: Math.round(buy * 1000) / 1000, sell_mw: Math.round(sell * 1000) / 1000, pnl_eur: pnlCents / 100 };
}

/** "+ 1,234.50" -> 1234.5; "- 120.00" -> -120; "0.00" -> 0 */
function parseSigned(text: string): number {
  const t = text.replace(/[,\s]/g, '');
  return t === '0' ? 0 : Number(t);
}

async function readRow(page: Page, label: string) {
  const row = page.locator(`[data-testid="report"] tr[data-hour="${label}"]`);
  const cell = (col: string) => row.locator(`[data-col="${col}"]`).innerText();
  return {
    trades: Number((await cell('trades')).replace(/,/g, '')),
    buy_mw: Number((await cell('buy_mw')).replace(/,/g, '')),
    sell_mw: Number((await cell('sell_mw')).replace(/,/g, '')),
    pnl_eur: parseSigned(await cell('pnl_eur')),
    pnlClass: (await row.locator('[data-col="pnl_eur"]').getAttribute('class')) ?? '',
  };
}

async function waitForRow(page: Page, label: string, want: ReturnType<typeof expected>) {
  const deadline = Date.now() + 10_000;
  let last: Awaited<ReturnType<typeof readRow>> | undefined;
  while (Date.now() < deadline) {
    last = await readRow(page, label).catch(() => undefined);
    if (last && last.trades === want.trades && last.buy_mw === want.buy_mw && last.sell_mw === want.sell_mw && last.pnl_eur === want.pnl_eur) return last;
    await page.waitForTimeout(100);
  }
  expect(last, `row ${label} never showed the expected values`).toMatchObject(want);
  return last!;
}

describe.skipIf(!haveChromium)('dashboard in Chromium', () => {
  let server: TestServer;
  let exchange: ExchangeSim;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const deals: PostedDeal[] = [
    { id: 'e2e-1', price: 5000, quantity: 10, direction: 'buy', delivery_hour: 8 },
    { id: 'e2e-2', price: 6000, quantity: 4, direction: 'sell', delivery_hour: 8 },
    { id: 'e2e-3', price: 4520, quantity: 12.5, direction: 'sell', delivery_hour: 13 },
  ];

  beforeAll(async () => {
    mkdirSync(outputDir, { recursive: true });
    await ensureWebBuild({ quiet: true });
    // The exchange: a real websocket server that sends only the deals this test asks for.
    exchange = await startExchangeSim({ port: 0, rate: 0, traders: [traderId] });
    server = await startTestServer({ env: { EXCHANGE_WS_URL: exchange.url } });
    await exchange.waitForClients(1, 20_000);
    await addUser(server.deps.db, { username: trader.username, password: trader.password, role: 'trader', trader_id: traderId });
    for (const d of deals) {
      const response = await server.request('/v1/trades', { method: 'POST', json: trade({ ...d, trader_id: traderId, delivery_day: day }) });
      expect(response.status, await response.clone().text()).toBe(200);
    }
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    // Playwright's waits give up before the test's timeout, so a failure names what it waited for.
    page.setDefaultTimeout(10_000);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await exchange?.close();
  });

  it('does send a signed-out visitor to the sign-in page and refuses a wrong password there', async () => {
    await page.goto(`${server.url}/`);
    await page.waitForURL(/\/signin/);
    await page.fill('input[name=username]', trader.username);
    await page.fill('input[name=password]', 'wrong-password');
    await page.click('button[type=submit]');
    await expect(page.getByRole('alert').innerText()).resolves.toMatch(/wrong username or password/i);
  });

  it('does show the trader her report with the posted values when she signs in and enters her trader id', async () => {
    await page.fill('input[name=username]', trader.username);
    await page.fill('input[name=password]', trader.password);
    await page.click('button[type=submit]');
    await page.waitForSelector('input[name=trader_id]');
    // Her own trader id is the default; she enters it (and the day) as a trader would.
    expect(await page.inputValue('input[name=trader_id]')).toBe(traderId);
    await page.fill('input[name=trader_id]', traderId);
    await page.fill('input[name=delivery_day]', day);
    await page.click('button:has-text("Show report")');
    await page.waitForSelector('[data-testid="report"]');

    expect(await page.locator('[data-testid="report"] tbody tr').count()).toBe(24);
    const h8 = await waitForRow(page, '08-09', expected(deals, 8));
    expect(h8.pnlClass).toContain('neg');
    const h13 = await waitForRow(page, '13-14', expected(deals, 13));
    expect(h13.pnlClass).toContain('pos');
    await waitForRow(page, '00-01', expected(deals, 0));
    await waitForRow(page, 'total', expected(deals, 'total'));
    expect(await page.locator('[data-hour="08-09"] [data-col="pnl_eur"]').innerText()).toMatch(/^- \d/);
  });

  it('does update the row, the total and the tape without a reload when a deal arrives on the exchange feed', async () => {
    // A reload would lose these (strings: the test's tsconfig has no DOM types). The observer
    // records every cell that got the highlight, however briefly.
    await page.evaluate(`window.noReload = true; window.flashed = [];
      new MutationObserver((records) => { for (const r of records) if (r.target.classList.contains('flash')) window.flashed.push(r.target.closest('tr').dataset.hour + ':' + r.target.dataset.col); })
        .observe(document.querySelector('[data-testid="report"]'), { subtree: true, attributes: true, attributeFilter: ['class'] });`);
    await page.waitForSelector('[data-testid="live-badge"]:has-text("Live")');
    const sent = exchange.sendDeal({ id: 'e2e-feed-1', price: 55.1, quantity: 3, direction: 'sell', delivery_day: day, delivery_hour: '08-09', trader_id: traderId });
    // The feed speaks EUR/MWh; the API's trades (and this test's arithmetic) eurocent.
    const arriving: PostedDeal = { id: sent.id, price: Math.round(sent.price * 100), quantity: sent.quantity, direction: sent.direction, delivery_hour: 8 };
    deals.push(arriving);

    await waitForRow(page, '08-09', expected(deals, 8));
    await waitForRow(page, 'total', expected(deals, 'total'));
    await page.waitForSelector(`[data-testid="tape"] [data-deal="${arriving.id}"]`);
    await page.waitForSelector('[data-testid="feed-badge"]:has-text("Feed connected")');
    expect(await page.evaluate('window.noReload')).toBe(true);
    const flashed = await page.evaluate<string[]>('window.flashed');
    expect(flashed).toEqual(expect.arrayContaining(['08-09:trades', '08-09:sell_mw', '08-09:pnl_eur', 'total:trades', 'total:pnl_eur']));
    expect(flashed.filter((cell) => cell.startsWith('13-14') || cell.endsWith(':buy_mw'))).toEqual([]);
    await page.screenshot({ path: path.join(outputDir, 'dashboard.png'), fullPage: true });
  });

  it('does fetch the report again after the server dropped the live connection, showing the deals it missed', async () => {
    await page.evaluate('window.noReload = true');
    server.hub.io.disconnectSockets(true); // server-side: no connection-state recovery, no replay
    await page.waitForSelector('[data-testid="live-badge"]:has-text("Reconnecting")');
    const missed: PostedDeal = { id: 'e2e-missed', price: 4800, quantity: 2.5, direction: 'buy', delivery_hour: 13 };
    const response = await server.request('/v1/trades', { method: 'POST', json: trade({ ...missed, trader_id: traderId, delivery_day: day }) });
    expect(response.status).toBe(200);
    deals.push(missed);

    await page.waitForSelector('[data-testid="live-badge"]:has-text("Live")');
    await waitForRow(page, '13-14', expected(deals, 13));
    await waitForRow(page, 'total', expected(deals, 'total'));
    await page.waitForSelector(`[data-testid="tape"] [data-deal="${missed.id}"]`);
    expect(await page.evaluate('window.noReload')).toBe(true);
  });

  it('does strike the deal through on the tape and take it out of its hour when the exchange recalls it', async () => {
    await page.evaluate('window.noReload = true');
    exchange.sendRecall('e2e-feed-1', 'mistrade');
    deals.splice(deals.findIndex((d) => d.id === 'e2e-feed-1'), 1);
    await page.waitForSelector('[data-testid="tape"] [data-deal="e2e-feed-1"][data-recalled="true"]');
    await waitForRow(page, '08-09', expected(deals, 8));
    await waitForRow(page, 'total', expected(deals, 'total'));
    const style = await page.evaluate<string>(`getComputedStyle(document.querySelector('[data-testid="tape"] [data-deal="e2e-feed-1"] .qty')).textDecorationLine`);
    expect(style).toBe('line-through');
    expect(await page.evaluate('window.noReload')).toBe(true);
  });

  it('does show 25 hours with the repeated hour told apart on the autumn DST day', async () => {
    await page.fill('input[name=delivery_day]', '2023-10-29');
    await page.click('button:has-text("Show report")');
    await page.waitForSelector('[data-testid="report"] tr[data-hour="03-04"]');
    expect(await page.locator('[data-testid="report"] tbody tr').count()).toBe(25);
    const twice = await page.locator('[data-testid="report"] tbody tr[data-hour^="02-03"] th').allInnerTexts();
    expect(twice).toHaveLength(2);
    expect(new Set(twice).size).toBe(2);
    await page.fill('input[name=delivery_day]', day);
    await page.click('button:has-text("Show report")');
    await waitForRow(page, 'total', expected(deals, 'total'));
  });

  it('does show a quarter hour under its hour in the table and its period on the tape', async () => {
    const other = '2023-02-09';
    for (const t of [
      trade({ id: 'e2e-q1', trader_id: traderId, delivery_day: other, delivery_hour: 8, delivery_period: '08:15-08:30', direction: 'sell', quantity: 8, price: 5000 }),
      trade({ id: 'e2e-q2', trader_id: traderId, delivery_day: other, delivery_hour: 8, direction: 'buy', quantity: 1, price: 4000 }),
    ]) expect((await server.request('/v1/trades', { method: 'POST', json: t })).status).toBe(200);
    await page.fill('input[name=delivery_day]', other);
    await page.click('button:has-text("Show report")');
    const product = page.locator('[data-testid="report"] tr[data-product="08:15-08:30"]');
    await product.waitFor();
    expect(await product.getAttribute('data-in-hour')).toBe('08-09');
    // 8 MW x 0.25 h x 50.00 = 100 EUR; the hour: 100 - 40 = 60
    expect(await product.locator('[data-col="pnl_eur"]').innerText()).toBe('+ 100.00');
    expect(await product.locator('[data-col="sell_mw"]').innerText()).toBe('8.0');
    await waitForRow(page, '08-09', { trades: 2, buy_mw: 1, sell_mw: 8, pnl_eur: 60 });
    // Right under its hour: the hour's plain product and the quarter hour, then the next hour.
    const order = await page.locator('[data-testid="report"] tbody tr').evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: Record<string, string> }).dataset.hour ?? `  ${(r as unknown as { dataset: Record<string, string> }).dataset.product}`));
    expect(order.slice(order.indexOf('08-09'), order.indexOf('08-09') + 4)).toEqual(['08-09', '  08-09', '  08:15-08:30', '09-10']);
    expect(await page.locator('[data-testid="tape"] [data-deal="e2e-q1"] [data-col="period"]').innerText()).toBe('08:15-08:30');
    expect(await page.locator('[data-testid="tape"] [data-deal="e2e-q2"] [data-col="period"]').innerText()).toBe('08-09');
  });

  it('does show the second autumn 02:00 hour apart on the tape and in the table when its deals arrive on the feed', async () => {
    const autumn = '2024-10-27';
    await page.fill('input[name=delivery_day]', autumn);
    await page.click('button:has-text("Show report")');
    await page.waitForSelector('[data-testid="report"] tr[data-hour="03-04"]');
    await page.waitForSelector('[data-testid="live-badge"]:has-text("Live")');
    const b = exchange.sendDeal({ id: 'e2e-b', price: 30, quantity: 2, direction: 'buy', delivery_day: autumn, delivery_hour: '02-03B', trader_id: traderId });
    const bq = exchange.sendDeal({ id: 'e2e-bq', price: 40, quantity: 4, direction: 'sell', delivery_day: autumn, delivery_hour: '02:15-02:30B', trader_id: traderId });
    await page.waitForSelector(`[data-testid="tape"] [data-deal="${bq.id}"]`);
    expect(await page.locator(`[data-testid="tape"] [data-deal="${b.id}"] [data-col="period"]`).innerText()).toBe('02-03B');
    expect(await page.locator(`[data-testid="tape"] [data-deal="${bq.id}"] [data-col="period"]`).innerText()).toBe('02:15-02:30B');
    const product = page.locator('[data-testid="report"] tr[data-product="02:15-02:30B"]');
    await product.waitFor();
    expect(await product.getAttribute('data-in-hour')).toBe('02-03 (+01:00)');
    // buy 2 x 30 = -60; sell 4 x 0.25 x 40 = +40
    await waitForRow(page, '02-03 (+01:00)', { trades: 2, buy_mw: 2, sell_mw: 4, pnl_eur: -20 });
    await waitForRow(page, '02-03 (+02:00)', { trades: 0, buy_mw: 0, sell_mw: 0, pnl_eur: 0 });
    await page.screenshot({ path: path.join(outputDir, 'dashboard-autumn-products.png'), fullPage: true });
    await page.fill('input[name=delivery_day]', day);
    await page.click('button:has-text("Show report")');
    await waitForRow(page, 'total', expected(deals, 'total'));
  });

  it('does show a message, not a blank page, when the trader asks for another trader (403)', async () => {
    await page.fill('input[name=trader_id]', 'someone_else');
    await page.click('button:has-text("Show report")');
    await expect(page.getByRole('alert').innerText()).resolves.toMatch(/not allowed.*own/i);
    expect(await page.locator('button:has-text("Desk view")').count()).toBe(0);
    await page.fill('input[name=trader_id]', traderId);
    await page.click('button:has-text("Show report")');
    await waitForRow(page, 'total', expected(deals, 'total'));
  });

  it('does say so and offer a retry, not a blank page, when the API cannot be reached', async () => {
    await page.route('**/v1/reports/**', (route) => route.abort('connectionrefused'));
    await page.click('button:has-text("Show report")');
    await expect(page.getByRole('alert').innerText()).resolves.toMatch(/cannot be reached/);
    await page.unroute('**/v1/reports/**');
    await page.click('button:has-text("Try again")');
    await waitForRow(page, 'total', expected(deals, 'total'));
  });

  it('does show the desk lead every trader\'s totals in the desk view', async () => {
    const leadContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const lead = await leadContext.newPage();
    lead.setDefaultTimeout(10_000);
    await addUser(server.deps.db, { username: 'lead', password: 'lead-secret-password', role: 'analyst' });
    await lead.goto(`${server.url}/signin`);
    await lead.fill('input[name=username]', 'lead');
    await lead.fill('input[name=password]', 'lead-secret-password');
    await lead.click('button[type=submit]');
    await lead.waitForSelector('input[name=delivery_day]');
    await lead.fill('input[name=delivery_day]', day);
    await lead.click('button:has-text("Desk view")');
    const row = lead.locator(`[data-testid="desk"] tr[data-trader="${traderId}"]`);
    await row.waitFor();
    const want = expected(deals, 'total');
    expect(Number((await row.locator('[data-col="trades"]').innerText()).replace(/,/g, ''))).toBe(want.trades);
    expect(parseSigned(await row.locator('[data-col="pnl_eur"]').innerText())).toBe(want.pnl_eur);
    // A click on the trader opens her report.
    await row.locator('button').click();
    await waitForRow(lead, 'total', want);
    await leadContext.close();
  });

  it('does fit a 390px phone screen', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, storageState: await context.storageState() });
    const small = await phone.newPage();
    await small.goto(`${server.url}/?trader=${traderId}&day=${day}`);
    await waitForRow(small, 'total', expected(deals, 'total'));
    const overflow = await small.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await small.screenshot({ path: path.join(outputDir, 'dashboard-phone.png'), fullPage: true });
    await phone.close();
  });
});
