// The trades REST API on the exchange team's contract: GET/POST /v1/trades, POST /v1/trades/batch.
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import { z } from 'zod';
import { canSeeDesk, canWriteTrades, type User } from '../auth/users';
import type { AppDeps, AppEnv } from '../http/context';
import { ApiError, badRequest, conflict, forbidden } from '../http/errors';
import { ErrorResponse } from '../http/openapi';
import { bodyLines, parseQuery, readJson } from '../http/validate';
import { mayImport } from '../importer/routes';
import { assertRunning, ImportStateError, recordImportBatch } from '../importer/store';
import { checkApiTrade, toApiTrade, type TradeRow } from './normalize';
import { Trade, TradeQuery } from './schema';
import { ingestTrades, listTrades, type IngestOutcome } from './store';

export const maxBatch = 10_000;

export const BatchItemResult = z.object({
  index: z.number().int().meta({ description: '0-based position in the batch' }),
  line: z.number().int().optional().meta({ description: 'NDJSON line number (1-based)' }),
  id: z.string().optional(),
  status: z.enum(['stored', 'duplicate', 'conflict', 'invalid']),
  message: z.string().optional(),
});

export const BatchResult = z
  .object({
    received: z.number().int(),
    stored: z.number().int(),
    duplicates: z.number().int(),
    conflicts: z.number().int(),
    invalid: z.number().int(),
    results: z.array(BatchItemResult),
  })
  .meta({ id: 'BatchResult' });

type BatchItem = z.infer<typeof BatchItemResult>;

/** A stored trade as listed: a deal the exchange recalled (a mistrade) says when and why; it no longer counts in PnL. */
const ListedTradeSchema = Trade.extend({
  recall: z.object({ reason: z.string(), recalled_at: z.string().meta({ format: 'date-time' }) }).optional()
    .meta({ description: 'Only on a deal the exchange recalled: it is kept but left out of PnL and reports' }),
}).meta({ id: 'ListedTrade' });

// Optional, for the nightly file importer: its trades are stored as source "file", and a batch
// that names its import is counted there once (keyed by the file line of its first row).
const BatchQuery = z
  .strictObject({
    source: z.enum(['api', 'file'], { error: 'must be "api" or "file"' }).default('api').meta({ description: '"file" (service or admin only) marks trades read from the nightly file' }),
    import_id: z.coerce.number().int().positive().optional().meta({ description: 'The import (POST /v1/imports) this batch belongs to; needs source=file, first_line, last_line' }),
    first_line: z.coerce.number().int().positive().optional().meta({ description: 'File line of the batch\'s first row' }),
    last_line: z.coerce.number().int().positive().optional().meta({ description: 'File line of the batch\'s last row' }),
  })
  .refine((q) => q.import_id === undefined || (q.source === 'file' && q.first_line !== undefined && q.last_line !== undefined), { error: 'import_id: needs source=file, first_line and last_line', path: ['import_id'] });

function assertMayWrite(user: User, traderId: string): void {
  if (!canWriteTrades(user)) throw forbidden(`role ${user.role} may not add trades`);
  if (!canSeeDesk(user) && user.trader_id !== traderId) throw forbidden(`trader_id: you may only add trades of your own trader_id ${user.trader_id}`);
}

/**
 * A conflict as the caller may learn it: the differing fields only for a caller who may see the
 * stored trade; anyone else learns that the id is taken, nothing about the trade under it.
 */
function conflictMessage(user: User, outcome: IngestOutcome): string {
  const visible = canSeeDesk(user) || (outcome.storedTraderId !== undefined && outcome.storedTraderId === user.trader_id);
  return visible ? `trade ${outcome.id} already exists with different ${outcome.differences!.join(', ')}` : `trade id ${outcome.id} is already taken by another trade`;
}

/** Longest NDJSON line read as a trade (a trade is a few hundred characters). */
const maxLineChars = 64 * 1024;

export function tradesRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, tz, openapi, metrics, clock } = deps;
  const app = new Hono<AppEnv>();

  openapi.add({
    method: 'get', path: '/v1/trades', tag: 'trades', summary: 'All trades, optionally filtered by trader and local delivery day',
    description: 'Traders see only their own trades. Ordered by delivery start, then id.',
    query: TradeQuery,
    responses: { 200: { description: 'The trades', schema: z.array(ListedTradeSchema) }, 400: { description: 'Invalid query parameter', schema: ErrorResponse }, 403: { description: 'Another trader\'s trades', schema: ErrorResponse } },
  });
  app.get('/', async (c) => {
    const query = parseQuery(c, TradeQuery);
    const user = c.get('user');
    let traderId = query.trader_id;
    if (!canSeeDesk(user)) {
      if (traderId !== undefined && traderId !== user.trader_id) throw forbidden(`trader_id: you may only see your own trades (${user.trader_id})`);
      traderId = user.trader_id ?? undefined;
    }
    const pages = listTrades(db, { trader_id: traderId, delivery_day: query.delivery_day }, tz);
    c.header('Content-Type', 'application/json; charset=utf-8');
    // Streamed in keyset pages: "all trades" never sits in memory as one array.
    return stream(c, async (out) => {
      let first = true;
      await out.write('[');
      for await (const page of pages) {
        const text = page.map((row) => JSON.stringify(row.recalled_at ? { ...toApiTrade(row, tz), recall: { reason: row.recall_reason ?? '', recalled_at: row.recalled_at.toISOString() } } : toApiTrade(row, tz))).join(',');
        await out.write(first ? text : `,${text}`);
        first = false;
      }
      await out.write(']');
    });
  });

  openapi.add({
    method: 'post', path: '/v1/trades', tag: 'trades', summary: 'Add one trade',
    description: 'Posting an identical trade again is a harmless 200 ("duplicate"); the same id with different content is 409.',
    body: { schema: Trade },
    responses: {
      200: { description: 'Stored, or already stored with identical content', schema: z.object({ status: z.enum(['stored', 'duplicate']), trade: Trade }) },
      400: { description: 'Invalid trade: the message names the field and the reason', schema: ErrorResponse },
      403: { description: 'A role that may not add trades, or another trader\'s trade', schema: ErrorResponse },
      409: { description: 'A trade with this id exists with different content: the fields that differ, for a caller who may see that trade; otherwise only that the id is taken', schema: ErrorResponse },
    },
  });
  app.post('/', async (c) => {
    if (!canWriteTrades(c.get('user'))) throw forbidden(`role ${c.get('user').role} may not add trades`);
    const body = await readJson(c);
    const checked = checkApiTrade(body, tz);
    if (!checked.ok) {
      metrics.tradesIngested.inc({ source: 'api', outcome: 'invalid' });
      throw badRequest(checked.message);
    }
    assertMayWrite(c.get('user'), checked.value.trader_id);
    const [outcome] = await ingestTrades(db, [checked.value], 'api', tz, clock.now());
    if (outcome!.status === 'stored') await deps.pnlFreshness?.afterWrite([checked.value]); // read-your-writes on every process
    metrics.tradesIngested.inc({ source: 'api', outcome: outcome!.status });
    if (outcome!.status === 'conflict') throw conflict(`id: ${conflictMessage(c.get('user'), outcome!)}`);
    return c.json({ status: outcome!.status, trade: toApiTrade(checked.value, tz) }, 200);
  });

  openapi.add({
    method: 'post', path: '/v1/trades/batch', tag: 'trades', summary: `Add up to ${maxBatch} trades at once`,
    description: 'A JSON array of trades, or NDJSON (Content-Type: application/x-ndjson), one trade per line. Every item gets its own result; valid items are stored even when others fail.',
    query: BatchQuery,
    body: { schema: z.array(Trade), contentTypes: ['application/json', 'application/x-ndjson'] },
    responses: {
      200: { description: 'Per-item results', schema: BatchResult }, 400: { description: 'Not a JSON array / NDJSON', schema: ErrorResponse },
      403: { description: 'A role that may not add trades (analyst), or source=file by a role other than service or admin', schema: ErrorResponse }, 409: { description: 'import_id is not a running import', schema: ErrorResponse },
      413: { description: `More than ${maxBatch} trades (NDJSON: refused at the line of trade ${maxBatch + 1}, before the rest is read)`, schema: ErrorResponse },
    },
  });
  app.post('/batch', async (c) => {
    const user = c.get('user');
    if (!canWriteTrades(user)) throw forbidden(`role ${user.role} may not add trades`);
    const query = parseQuery(c, BatchQuery);
    if (query.source !== 'api' && !mayImport(user)) throw forbidden(`source: role ${user.role} may not store trades as source=${query.source} (service or admin only)`);
    if (query.import_id !== undefined) await assertRunning(db, query.import_id).catch((e) => { throw e instanceof ImportStateError ? conflict(e.message) : e; });
    const ndjson = (c.req.header('content-type') ?? '').includes('ndjson');
    const items: { value?: unknown; line?: number; error?: string }[] = [];
    if (ndjson) {
      // Read as it arrives: the 10,001st trade ends the request before anything else is held.
      for await (const { line, text, tooLong } of bodyLines(c.req.raw.body, { maxLineChars: maxLineChars })) {
        if (tooLong) { items.push({ line, error: `line ${line}: longer than ${maxLineChars} characters; one trade per line` }); }
        else if (!text.trim()) continue;
        else {
          try { items.push({ value: JSON.parse(text), line }); } catch (e) { items.push({ line, error: `line ${line}: not valid JSON (${(e as Error).message})` }); }
        }
        if (items.length > maxBatch) throw new ApiError(413, `body: at most ${maxBatch} trades per batch (line ${line} is trade ${items.length})`);
      }
    } else {
      const body = await readJson(c);
      if (!Array.isArray(body)) throw badRequest('body: must be a JSON array of trades (or NDJSON with Content-Type: application/x-ndjson)');
      if (body.length > maxBatch) throw new ApiError(413, `body: at most ${maxBatch} trades per batch (got ${body.length})`);
      for (const value of body) items.push({ value });
    }

    const results: BatchItem[] = new Array(items.length);
    const valid: { index: number; row: TradeRow }[] = [];
    for (const [index, item] of items.entries()) {
      if (index % 500 === 499) await new Promise<void>((resolve) => setImmediate(resolve)); // others get a turn
      const base = { index, ...(item.line ? { line: item.line } : {}) };
      const id = typeof (item.value as { id?: unknown })?.id === 'string' ? (item.value as { id: string }).id : undefined;
      if (item.error) { results[index] = { ...base, status: 'invalid', message: item.error }; continue; }
      const checked = checkApiTrade(item.value, tz);
      if (!checked.ok) { results[index] = { ...base, id, status: 'invalid', message: checked.message }; continue; }
      try {
        assertMayWrite(user, checked.value.trader_id);
      } catch (error) {
        results[index] = { ...base, id, status: 'invalid', message: (error as Error).message };
        continue;
      }
      valid.push({ index, row: checked.value });
    }
    const outcomes: IngestOutcome[] = valid.length ? await ingestTrades(db, valid.map((v) => v.row), query.source, tz, clock.now()) : [];
    await deps.pnlFreshness?.afterWrite(valid.filter((_v, i) => outcomes[i]!.status === 'stored').map((v) => v.row));
    outcomes.forEach((o, i) => {
      const index = valid[i]!.index;
      const line = items[index]!.line;
      results[index] = {
        index, ...(line ? { line } : {}), id: o.id, status: o.status,
        ...(o.status === 'conflict' ? { message: conflictMessage(user, o) } : {}),
      };
    });
    const count = (s: BatchItem['status']) => results.filter((r) => r.status === s).length;
    const summary = { received: items.length, stored: count('stored'), duplicates: count('duplicate'), conflicts: count('conflict'), invalid: count('invalid') };
    for (const [outcome, n] of [['stored', summary.stored], ['duplicate', summary.duplicates], ['conflict', summary.conflicts], ['invalid', summary.invalid]] as const) {
      if (n) metrics.tradesIngested.inc({ source: query.source, outcome }, n);
    }
    if (query.import_id !== undefined) {
      await recordImportBatch(db, { import_id: query.import_id, first_line: query.first_line!, last_line: query.last_line!, received: items.length, invalid: summary.invalid }, valid.map((v) => v.row), outcomes, tz);
    }
    return c.json({ ...summary, results }, 200);
  });

  return app;
}
