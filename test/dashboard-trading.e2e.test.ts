// The trader's trading panels in real Chromium against the real server and the real exchange
// simulator (seeded; every crossing fill partial; prices still): a funded trader clicks an hour,
// is told by field what the API refused, places a buy that fills in part, sees her balance,
// fill, position and notifications move live, modifies the rest and cancels it. At 1440 and
// 390 px. Screenshots go to test-output/.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startExchangeSim, type ExchangeSim } from '../scripts/exchange-sim';
import { ensureWebBuild } from '../scripts/build-web';
import { addUser } from '../server/auth/users';
import type { ApiBalance, ApiOrder } from '../server/live/events';
import { formatPrice } from '../web/src/lib/format';
import { chromiumArgs, chromiumPath, haveChromium, outputDir, requireChromium } from './helpers/chromium';
import { jsonOf, startTestServer, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

requireChromium('dashboard-trading.e2e');

const tara = { username: 'tara', password: 'tara-secret-password', trader_id: 'tara_t' };
const analyst = { username: 'anita', password: 'anita-secret-password' };
const auth = `Basic ${Buffer.from(`${tara.username}:${tara.password}`).toString('base64')}`;
/** Tomorrow in Berlin: far from gate closure whenever the test runs. */
const tomorrow = (() => {
  const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
  const d = new Date(`${today}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
})();

const overflow = (page: Page) => page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
const text = (page: Page, selector: string) => page.locator(selector).first().innerText();
/** EUR text of the API ("2985.00") as the page shows it ("2,985.00"). */
const shown = (eurText: string) => formatPrice(Number(eurText));

async function signIn(page: Page, url: string, who: { username: string; password: string } = tara, traderId?: string) {
  await page.goto(`${url}/signin`);
  await page.fill('input[name=username]', who.username);
  await page.fill('input[name=password]', who.password);
  await page.click('button[type=submit]');
  await page.waitForSelector('input[name=delivery_day]');
  if (traderId) await page.fill('input[name=trader_id]', traderId);
  await page.fill('input[name=delivery_day]', tomorrow);
  await page.click('button:has-text("Show report")');
  await page.waitForSelector('[data-testid="report"] tr[data-hour="08-09"]');
  await page.waitForSelector('[data-testid="balance"] [data-col="available"]');
  await page.waitForSelector('[data-testid="live-badge"]:has-text("Live")');
}

describe.skipIf(!haveChromium)('trading panels in Chromium', () => {
  let sim: ExchangeSim;
  let server: TestServer;
  let browser: Browser;
  const api = async <T>(p: string): Promise<T> => jsonOf(await server.request(p, { auth })) as Promise<T>;
  const order = async (id: string) => api<ApiOrder>(`/v1/orders/${id}`);
  const balance = () => api<ApiBalance>(`/v1/balance?trader_id=${tara.trader_id}`);

  beforeAll(async () => {
    mkdirSync(outputDir, { recursive: true });
    await ensureWebBuild({ quiet: true });
    // No generated deals, no price moves: a crossing order fills in part at once and its rest
    // rests until the test changes it.
    sim = await startExchangeSim({ port: 0, rate: 0, seed: 7, partialFillRate: 1, priceEveryMs: 0, orderRejectRate: 0, idPrefix: `ui${Date.now().toString(36)}` });
    server = await startTestServer({ env: { EXCHANGE_WS_URL: sim.url, FEED_BACKOFF_MIN_MS: '20', FEED_BACKOFF_MAX_MS: '200', FEED_BATCH_MS: '2' } });
    await addUser(server.deps.db, { ...tara, role: 'trader' });
    await addUser(server.deps.db, { ...analyst, role: 'analyst' });
    await until(() => server.gateway?.connected, 'gateway connected', 60_000);
    expect((await server.request(`/v1/accounts/${tara.trader_id}/cash`, { method: 'POST', json: { amount: '50000.00', memo: 'desk funding' } })).status).toBe(200);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await sim?.close();
  });

  it('does place from a clicked hour, show refusals by field, then partial fill → balance moves → modify → cancel, live, at 1440 px', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await signIn(page, server.url);
    expect(await text(page, '[data-testid="balance"] [data-col="available"]')).toBe('50,000.00');
    expect(await text(page, '[data-testid="balance"] [data-col="held"]')).toBe('0.00');
    expect(await text(page, '[data-testid="balance"] [data-col="total"]')).toBe('50,000.00');
    await page.waitForSelector('[data-testid="open-empty"]');

    // A click on an hour prefills the ticket's product and day.
    await page.click('[data-testid="report"] tr[data-hour="08-09"]');
    expect(await page.inputValue('input[name=ticket_product]')).toBe('08-09');
    expect(await page.inputValue('input[name=ticket_day]')).toBe(tomorrow);

    // The API's 400 names two fields: each message lands at its field.
    await page.fill('input[name=ticket_quantity]', '0.05');
    await page.fill('input[name=ticket_price]', '12000');
    await page.click('[data-testid="ticket"] button[type=submit]');
    expect(await text(page, '[data-error="limit_price"]')).toContain('a price in EUR/MWh'); // not even sent: 5 digits of EUR
    await page.fill('input[name=ticket_price]', '-9999.99');
    await page.click('[data-testid="ticket"] button[type=submit]');
    await page.waitForSelector('[data-error="quantity"]:has-text("multiple of 0.1 MW")');
    expect(await text(page, '[data-error="limit_price"]')).toContain('-9999.00 to 9999.00 EUR/MWh');
    // 422: more than the cash, said under the form and at the quantity.
    await page.fill('input[name=ticket_quantity]', '1000');
    await page.fill('input[name=ticket_price]', '300');
    await page.click('[data-testid="ticket"] button[type=submit]');
    await page.waitForSelector('[data-error="form"]:has-text("insufficient cash")');
    expect(await text(page, '[data-error="form"]')).toContain('300000.00 EUR held, 50000.00 EUR is available');
    expect(await text(page, '[data-error="quantity"]')).toBe('not enough available cash for this quantity');
    expect(await page.locator('[data-error="limit_price"]').count()).toBe(0);

    // The buy crosses the ask: part of it fills at once, the rest rests at 300.00 and holds its cash.
    await page.fill('input[name=ticket_quantity]', '10');
    await page.click('[data-testid="ticket"] button[type=submit]');
    await page.waitForSelector('[data-testid="ticket-ok"]');
    expect(await page.locator('[data-error]').count()).toBe(0);
    const { orders } = await api<{ orders: ApiOrder[] }>(`/v1/orders?trader_id=${tara.trader_id}`);
    expect(orders).toHaveLength(1);
    expect(orders[0]!.client_order_id).toMatch(/^web-[0-9a-f]{24}$/);
    const id = orders[0]!.id;
    const partial = await until(async () => { const o = await order(id); return o.status === 'partially_filled' ? o : null; }, 'the partial fill', 30_000);
    expect(partial.fills).toHaveLength(1);
    const fill = partial.fills[0]!;
    expect(fill.quantity).toBeGreaterThan(0);
    expect(fill.quantity).toBeLessThan(10);
    expect(fill.price).toBeLessThan(30_000);
    const row = `[data-testid="open-orders"] li[data-order="${id}"]`;
    await page.waitForSelector(`${row}[data-status="partially_filled"]`);
    expect(await text(page, `${row} [data-col="quantity"]`)).toBe(`${fill.quantity.toFixed(1)} / 10.0 MW`);
    expect(await text(page, `${row} [data-col="limit_price"]`)).toBe('@ 300.00');
    // The balance moved live: the rest's hold at 300.00, the fill's cost paid.
    const heldCents = Math.round((10 - fill.quantity) * 30_000);
    const costCents = Math.round(fill.price * fill.quantity);
    const afterFill = await until(async () => { const b = await balance(); return b.held === (heldCents / 100).toFixed(2) ? b : null; }, 'the hold of the rest', 30_000);
    expect(Math.abs(Math.round(Number(afterFill.total) * 100) - (5_000_000 - costCents))).toBeLessThanOrEqual(1);
    await page.waitForSelector(`[data-testid="balance"] [data-col="held"]:text-is("${shown(afterFill.held)}")`);
    expect(await text(page, '[data-testid="balance"] [data-col="available"]')).toBe(shown(afterFill.available));
    expect(await text(page, '[data-testid="balance"] [data-col="total"]')).toBe(shown(afterFill.total));
    expect(await text(page, `${row} [data-col="held"]`)).toBe(`holds ${shown(afterFill.held)} EUR`);
    // Today's fill, the position with its MtM, the toast and the inbox.
    const fillRow = `[data-testid="fills"] tr[data-fill="${fill.trade_id}"]`;
    await page.waitForSelector(fillRow);
    expect(await text(page, `${fillRow} [data-col="quantity"]`)).toBe(fill.quantity.toFixed(1));
    expect(await text(page, `${fillRow} [data-col="price"]`)).toBe(formatPrice(fill.price / 100));
    const position = '[data-testid="positions"] tr[data-product="08-09"]';
    await page.waitForSelector(`${position} [data-col="net_mw"]:text-is("${fill.quantity.toFixed(1)}")`);
    expect(await text(page, `${position} [data-col="open"]`)).toBe(`${(10 - fill.quantity).toFixed(1)} / 0.0`);
    const [apiPosition] = await api<{ delivery_period: string; mtm_eur: string | null }[]>(`/v1/positions?trader_id=${tara.trader_id}&delivery_day=${tomorrow}`);
    expect(apiPosition!.delivery_period).toBe('08-09');
    if (apiPosition!.mtm_eur !== null) expect(await text(page, `${position} [data-col="mtm_eur"]`)).toMatch(/^[+-] [\d,]+\.\d{2}$|^0\.00$/);
    await page.waitForSelector('[data-testid="toasts"] [data-kind="partially_filled"]');
    expect(await text(page, '[data-testid="toasts"] [data-kind="partially_filled"]')).toContain(`${fill.quantity} MW filled`);
    await page.waitForSelector('[data-testid="inbox"] li[data-kind="partially_filled"].unread');
    await page.screenshot({ path: path.join(outputDir, 'dashboard-trading.png'), fullPage: true });

    // Modify the rest: 12 MW in total at 20.00 (below the ask: it rests), the hold follows.
    await page.click(`${row} button:has-text("Modify")`);
    await page.fill(`${row} input[name=modify_quantity]`, '12');
    await page.fill(`${row} input[name=modify_price]`, '20');
    await page.click(`${row} button:has-text("Save")`);
    await page.waitForSelector(`${row} [data-col="limit_price"]:text-is("@ 20.00")`);
    await page.waitForSelector(`${row}[data-status="partially_filled"]`);
    expect(await text(page, `${row} [data-col="quantity"]`)).toBe(`${fill.quantity.toFixed(1)} / 12.0 MW`);
    const modifiedHeld = (Math.round((12 - fill.quantity) * 2_000) / 100).toFixed(2);
    await until(async () => (await balance()).held === modifiedHeld, 'the hold after the modify', 30_000);
    await page.waitForSelector(`[data-testid="balance"] [data-col="held"]:text-is("${shown(modifiedHeld)}")`);

    // Cancel: the order leaves the open orders, the hold is released.
    await page.click(`${row} button:has-text("Cancel")`);
    await page.waitForSelector('[data-testid="open-empty"]');
    expect((await order(id)).status).toBe('canceled');
    await page.waitForSelector('[data-testid="balance"] [data-col="held"]:text-is("0.00")');
    const final = await balance();
    expect(final.held).toBe('0.00');
    expect(final.total).toBe(afterFill.total);
    expect(await text(page, '[data-testid="balance"] [data-col="available"]')).toBe(shown(final.available));
    await page.waitForSelector('[data-testid="inbox"] li[data-kind="canceled"]');
    // A click on an inbox entry marks it read, on the server too.
    const noteId = Number(await page.locator('[data-testid="inbox"] li[data-kind="canceled"]').getAttribute('data-notification'));
    await page.click(`[data-testid="inbox"] li[data-notification="${noteId}"] button`);
    await page.waitForSelector(`[data-testid="inbox"] li[data-notification="${noteId}"]:not(.unread)`);
    const inbox = await api<{ notifications: { id: number; read: boolean }[] }>(`/v1/notifications?trader_id=${tara.trader_id}`);
    expect(inbox.notifications.find((n) => n.id === noteId)?.read).toBe(true);
    // A market sell of 1 MW of what she bought: no price to give, it fills in full, the position shrinks.
    await page.check('input[name=ticket_side][value=sell]');
    await page.selectOption('select[name=ticket_type]', 'market');
    expect(await page.isDisabled('input[name=ticket_price]')).toBe(true);
    await page.fill('input[name=ticket_quantity]', '1');
    await page.click('[data-testid="ticket"] button[type=submit]:has-text("Sell 08-09")');
    await page.waitForSelector(`${position} [data-col="net_mw"]:text-is("${(fill.quantity - 1).toFixed(1)}")`);
    expect(await page.locator('[data-error]').count()).toBe(0);
    const sold = await until(async () => { const b = await balance(); return Number(b.total) > Number(final.total) ? b : null; }, 'the proceeds of the sell', 30_000);
    await page.waitForSelector(`[data-testid="balance"] [data-col="total"]:text-is("${shown(sold.total)}")`);
    await page.waitForSelector('[data-testid="fills"] tr[data-fill] .tp-sell');
    expect(await overflow(page)).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(outputDir, 'dashboard-trading-done.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it('does show an analyst the trader\'s orders, fills and positions but no ticket and no cancel or modify', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    await signIn(page, server.url, analyst, tara.trader_id);
    await page.waitForSelector('[data-testid="fills"] tr[data-fill]');
    await page.waitForSelector('[data-testid="positions"] tr[data-product="08-09"]');
    await page.waitForSelector('[data-testid="open-orders"]');
    expect(await page.locator('[data-testid="ticket"]').count()).toBe(0);
    expect(await page.locator('[data-testid="open-orders"] button').count()).toBe(0);
    await page.click('[data-testid="report"] tr[data-hour="08-09"]'); // nothing to prefill: no error either
    expect(await page.locator('[data-testid="ticket"]').count()).toBe(0);
    await context.close();
  });

  it('does fit the trading panels on a 390 px phone: the ticket comes into view on a click, what was missed while the connection was down is fetched again, the page no wider than the screen', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    await signIn(page, server.url);
    await page.click('[data-testid="report"] tr[data-hour="17-18"]');
    expect(await page.inputValue('input[name=ticket_product]')).toBe('17-18');
    await page.focus('[data-testid="report"] tr[data-hour="18-19"]'); // the keyboard picks a row too
    await page.keyboard.press('Enter');
    expect(await page.inputValue('input[name=ticket_product]')).toBe('18-19');
    await until(() => page.evaluate<boolean>(`(() => { const r = document.querySelector('[data-testid="ticket"]').getBoundingClientRect(); return r.top >= -1 && r.top < window.innerHeight; })()`), 'the ticket in view');
    await page.waitForSelector('[data-testid="fills"] tr[data-fill]');
    await page.waitForSelector('[data-testid="positions"] tr[data-product="08-09"]');
    // A deposit while the live connection is down (no replay): fetched again on reconnect.
    const before = await balance();
    server.hub.io.disconnectSockets(true);
    await page.waitForSelector('[data-testid="live-badge"]:has-text("Reconnecting")');
    expect((await server.request(`/v1/accounts/${tara.trader_id}/cash`, { method: 'POST', json: { amount: '1000.00' } })).status).toBe(200);
    const after = await balance();
    expect(Number(after.available)).toBe(Number(before.available) + 1000);
    await page.waitForSelector('[data-testid="live-badge"]:has-text("Live")');
    await page.waitForSelector(`[data-testid="balance"] [data-col="available"]:text-is("${shown(after.available)}")`);
    await page.waitForSelector('[data-testid="inbox"] li[data-kind="deposit"].unread');
    expect(await overflow(page)).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(outputDir, 'dashboard-trading-phone.png'), fullPage: true });
    await context.close();
  });
});
