// The dashboard in real Chromium past the happy path, at 1440 and 390 px: the desk view live, its
// tables on a phone, empty days, the server going away, a console without errors, and /docs.
// Screenshots go to test-output/.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { addUser } from '../server/auth/users';
import { ensureWebBuild, root } from '../scripts/build-web';
import { startTestServer, trade, type TestServer } from './helpers/server';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(chromiumPath);
const outputDir = path.join(root, 'test-output');
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];

if (!haveChromium) process.stderr.write(`\n${'!'.repeat(100)}\n!! dashboard-operator.e2e: Chromium not found at ${chromiumPath}: these browser tests are ${process.env.CI ? 'FAILING (CI is set)' : 'SKIPPED'}.\n${'!'.repeat(100)}\n\n`);

describe('operator dashboard in Chromium: Chromium itself', () => {
  it.runIf(process.env.CI)('does find Chromium when CI is set', () => {
    expect(haveChromium, `Chromium missing at ${chromiumPath}`).toBe(true);
  });
});

const day = '2023-03-07';
const emptyPastDay = '2023-03-01';
const traders = ['desk_trader_alpha_long_name', 'desk_trader_beta_long_name'];
const lead = { username: 'deskl', password: 'deskl-secret-password' };
const trader = { username: 'tina', password: 'tina-secret-password', trader_id: traders[0]! };

const todayInBerlin = () => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());

async function signIn(page: Page, url: string, who: { username: string; password: string }) {
  await page.goto(`${url}/signin`);
  await page.fill('input[name=username]', who.username);
  await page.fill('input[name=password]', who.password);
  await page.click('button[type=submit]');
  await page.waitForSelector('input[name=delivery_day]');
}

/** Console errors, uncaught exceptions and failed requests of a page, for "no noise" assertions. */
function watchNoise(page: Page): string[] {
  const noise: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') noise.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => noise.push(`exception: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400) noise.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`); });
  return noise;
}

const overflow = (page: Page) => page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');

describe.skipIf(!haveChromium)('operator dashboard in Chromium', () => {
  let server: TestServer;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(outputDir, { recursive: true });
    await ensureWebBuild({ quiet: true });
    server = await startTestServer();
    await addUser(server.deps.db, { ...lead, role: 'analyst' });
    await addUser(server.deps.db, { ...trader, role: 'trader' });
    const deals = [
      trade({ id: 'desk-1', trader_id: traders[0], delivery_day: day, delivery_hour: 8, direction: 'buy', quantity: 1200, price: 5000 }),
      trade({ id: 'desk-2', trader_id: traders[0], delivery_day: day, delivery_hour: 8, direction: 'sell', quantity: 1200, price: 5250 }),
      trade({ id: 'desk-3', trader_id: traders[1], delivery_day: day, delivery_hour: 13, direction: 'sell', quantity: 10, price: 4000 }),
      trade({ id: 'desk-4', trader_id: traders[1], delivery_day: day, delivery_hour: 17, direction: 'buy', quantity: 5, price: 6000 }),
    ];
    for (const t of deals) expect((await server.request('/v1/trades', { method: 'POST', json: t })).status).toBe(200);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('does sign in and show the trader page with no console error, no failed request, and its favicon', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const noise = watchNoise(page);
    await page.goto(`${server.url}/`);
    await page.waitForURL(/\/signin/);
    await page.waitForSelector('input[name=username]');
    await page.fill('input[name=username]', trader.username);
    await page.fill('input[name=password]', trader.password);
    await page.click('button[type=submit]');
    await page.waitForSelector('input[name=trader_id]');
    await page.fill('input[name=delivery_day]', day);
    await page.click('button:has-text("Show report")');
    await page.waitForSelector('[data-testid="report"] tr[data-hour="08-09"]');
    expect(await page.locator('[data-testid="headline"]').innerText()).toBe('+ 3,000.00 EUR'); // 1,200 MW x 2.50
    expect(await page.locator('[data-testid="report"] tr[data-hour="total"] [data-col="buy_mw"]').innerText()).toBe('1,200.0');
    // Another trader's id: refused in words, without a failed request.
    await page.fill('input[name=trader_id]', traders[1]!);
    await page.click('button:has-text("Show report")');
    await expect(page.getByRole('alert').innerText()).resolves.toBe(`Not allowed: you may only see your own trader_id (${traders[0]})`);
    await page.fill('input[name=trader_id]', traders[0]!);
    await page.click('button:has-text("Show report")');
    await page.waitForSelector('[data-testid="headline"]');
    await page.waitForSelector('[data-testid="live-badge"]:has-text("Live")');
    const icon = await page.evaluate<string | null>(`document.querySelector('link[rel="icon"]')?.getAttribute('href') ?? null`);
    expect(new URL(icon!, server.url).pathname).toBe('/favicon.svg');
    for (const p of ['/favicon.svg', '/favicon.ico']) {
      const res = await fetch(`${server.url}${p}`);
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type'), p).toBe('image/svg+xml');
    }
    expect(noise).toEqual([]);
    await context.close();
  });

  it('does say what an empty day is and draw its chart around 0, not on a 0–1 axis', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    await signIn(page, server.url, trader);
    await page.fill('input[name=delivery_day]', emptyPastDay);
    await page.click('button:has-text("Show report")');
    await page.waitForSelector('[data-testid="chart-empty"]');
    expect(await page.locator('[data-testid="tape-empty"]').innerText()).toBe('Delivered — no trades on this day');
    expect(await page.locator('[data-testid="chart-empty"]').innerText()).toBe('Delivered — no trades on this day');
    const chart = page.locator('[data-testid="chart"]');
    expect([await chart.getAttribute('data-y-min'), await chart.getAttribute('data-y-max')]).toEqual(['-100', '100']);
    expect(await page.locator('[data-testid="report"] tbody tr').count()).toBe(24);
    await page.screenshot({ path: path.join(outputDir, 'dashboard-empty-day.png'), fullPage: true });

    await page.fill('input[name=delivery_day]', todayInBerlin());
    await page.click('button:has-text("Show report")');
    await page.waitForSelector('[data-testid="tape-empty"]:has-text("today")');
    expect(await page.locator('[data-testid="tape-empty"]').innerText()).toBe('No deals yet today');
    // A trading day's chart takes the axis its values need.
    await page.fill('input[name=delivery_day]', day);
    await page.click('button:has-text("Show report")');
    await page.waitForSelector('[data-testid="chart"]:not([data-empty])');
    expect(Number(await chart.getAttribute('data-y-max'))).toBeGreaterThanOrEqual(3000);
    await context.close();
  });

  it('does show the desk lead every trader live at 1440 px: PnL per hour, the desk tape, the feed and reconciliation state', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    await signIn(page, server.url, lead);
    await page.fill('input[name=delivery_day]', day);
    await page.click('button:has-text("Desk view")');
    const chart = page.locator('[data-testid="desk-chart"]');
    await page.waitForFunction(`document.querySelector('[data-testid="desk-chart"]')?.dataset.traders === ${JSON.stringify(traders.join(' '))}`);
    expect(await chart.getAttribute('data-empty')).toBeNull();
    expect(await page.locator(`[data-testid="desk"] tr[data-trader="${traders[0]}"] [data-col="pnl_eur"]`).innerText()).toBe('+ 3,000.00');
    expect(await page.locator('[data-testid="desk"] tr[data-trader="total"] [data-col="trades"]').innerText()).toBe('4');
    expect(await page.locator('[data-testid="desk-feed"]').innerText()).toMatch(/^Exchange feed: (connected|disconnected)/);
    expect(await page.locator('[data-testid="recon-empty"]').innerText()).toBe(`Nightly file: none imported for ${day} yet.`);
    expect(await page.locator('[data-testid="tape-empty"]').innerText()).toBe('Delivered — the tape shows deals as they arrive, and this day is over');

    // A deal of the second trader arrives: the desk's tape, its row and its line move without a reload.
    await page.evaluate('window.noReload = true');
    const live = trade({ id: 'desk-live-1', trader_id: traders[1], delivery_day: day, delivery_hour: 13, direction: 'sell', quantity: 2, price: 10_000 });
    expect((await server.request('/v1/trades', { method: 'POST', json: live })).status).toBe(200);
    const onTape = page.locator('[data-testid="tape"] [data-deal="desk-live-1"]');
    await onTape.waitFor();
    expect(await onTape.locator('[data-col="trader"]').innerText()).toBe(traders[1]);
    await page.waitForSelector(`[data-testid="desk"] tr[data-trader="${traders[1]}"] [data-col="trades"]:text-is("3")`);
    // 10 x 40 - 5 x 60 + 2 x 100 = 300
    expect(await page.locator(`[data-testid="desk"] tr[data-trader="${traders[1]}"] [data-col="pnl_eur"]`).innerText()).toBe('+ 300.00');
    expect(await page.locator('[data-testid="desk"] tr[data-trader="total"] [data-col="trades"]').innerText()).toBe('5');
    expect(await page.evaluate('window.noReload')).toBe(true);
    expect(await overflow(page)).toBeLessThanOrEqual(0);
    expect(await page.locator('[data-testid="scroll-hint"]').count()).toBe(0); // wide enough: no hint
    await page.screenshot({ path: path.join(outputDir, 'dashboard-desk.png'), fullPage: true });

    // The whole row opens the trader, not only the small id button.
    await page.locator(`[data-testid="desk"] tr[data-trader="${traders[1]}"] [data-col="sell_mw"]`).click();
    await page.waitForSelector('[data-testid="headline"]');
    expect(await page.locator('#report-title').innerText()).toContain(`PnL · ${traders[1]} · ${day}`);
    expect(await page.locator('[data-testid="headline"]').innerText()).toBe('+ 300.00 EUR');
    await context.close();
  });

  it('does let the desk table scroll sideways on a 390 px phone with a visible hint, the page itself no wider than the screen', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    await signIn(page, server.url, lead);
    await page.goto(`${server.url}/?view=desk&day=${day}`);
    await page.waitForSelector(`[data-testid="desk"] tr[data-trader="${traders[0]}"]`);
    await page.waitForFunction(`document.querySelector('[data-testid="desk-chart"]')?.dataset.traders === ${JSON.stringify(traders.join(' '))}`);
    expect(await overflow(page)).toBeLessThanOrEqual(0);
    const hint = page.locator('[data-testid="scroll-hint"]').first();
    await hint.waitFor();
    expect(await hint.innerText()).toBe('Swipe sideways for more columns →');
    const scrollable = await page.evaluate<boolean>(`(() => { const box = document.querySelector('[data-testid="desk"]').parentElement; return box.scrollWidth > box.clientWidth; })()`);
    expect(scrollable).toBe(true);
    await page.screenshot({ path: path.join(outputDir, 'dashboard-desk-phone.png'), fullPage: true });
    // Scrolled to the end: the PnL column is in view and the hint points back.
    await page.evaluate(`(() => { const box = document.querySelector('[data-testid="desk"]').parentElement; box.scrollLeft = box.scrollWidth; })()`);
    await page.waitForSelector('[data-testid="scroll-hint"]:has-text("Swipe back")');
    const pnl = await page.locator(`[data-testid="desk"] tr[data-trader="${traders[0]}"] [data-col="pnl_eur"]`).boundingBox();
    expect(pnl!.x + pnl!.width).toBeLessThanOrEqual(390);
    await context.close();
  });

  it('does say in words that the server is gone and show the feed as unknown', async () => {
    const gone = await startTestServer();
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    try {
      await addUser(gone.deps.db, { ...trader, role: 'trader' });
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      await signIn(page, gone.url, trader);
      await page.waitForSelector('[data-testid="live-badge"]:has-text("Live")');
      await page.waitForSelector('[data-testid="feed-badge"]:not([data-state="unknown"])');
      expect(await page.locator('[data-testid="connection"]').count()).toBe(0);
      await gone.close();
      await page.waitForSelector('[data-testid="connection"]');
      expect(await page.locator('[data-testid="connection"]').innerText()).toBe('Connection to the server lost — retrying…');
      await page.waitForSelector('[data-testid="feed-badge"][data-state="unknown"]');
      expect(await page.locator('[data-testid="feed-badge"]').innerText()).toBe('Feed status unknown');
      expect(await page.locator('body').innerText()).not.toMatch(/xhr poll error|websocket error/);
      await page.screenshot({ path: path.join(outputDir, 'dashboard-server-gone.png'), fullPage: true });
    } finally {
      await context.close();
      await gone.close().catch(() => {});
    }
  });

  it('does serve an interactive /docs from the server alone, legible on a 390 px phone', async () => {
    for (const [width, name] of [[1440, 'docs.png'], [390, 'docs-phone.png']] as const) {
      const context = await browser.newContext({ viewport: { width, height: 900 }, ...(width === 390 ? { deviceScaleFactor: 2, isMobile: true, hasTouch: true } : {}) });
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      const elsewhere: string[] = [];
      page.on('request', (r) => { if (!r.url().startsWith(server.url) && !r.url().startsWith('data:')) elsewhere.push(r.url()); });
      const noise = watchNoise(page);
      await page.goto(`${server.url}/docs`);
      await page.waitForSelector('.opblock-summary-path');
      const paths = await page.locator('.opblock-summary-path').allInnerTexts();
      expect(paths.map((p) => p.replace(/\u200b/g, ''))).toEqual(expect.arrayContaining(['/v1/trades', '/v1/trades/batch', '/v1/reports/pnl', '/v1/session']));
      // An operation opens with its request body schema and an example of it.
      await page.locator('.opblock-post .opblock-summary:has(.opblock-summary-path[data-path="/v1/trades"])').first().click();
      await page.waitForSelector('.opblock-post.is-open .body-param__example, .opblock-post.is-open .example');
      expect(await page.locator('.opblock-post.is-open').first().innerText()).toContain('"execution_time"');
      expect(await overflow(page)).toBeLessThanOrEqual(0);
      expect(elsewhere).toEqual([]);
      expect(noise).toEqual([]);
      await page.screenshot({ path: path.join(outputDir, name), fullPage: false });
      await context.close();
    }
  });
});
