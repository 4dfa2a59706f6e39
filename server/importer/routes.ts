// REST endpoints of the nightly file import: /v1/imports (the importer records its work here)
// and /v1/reconciliations (file vs live feed).
import { Hono } from 'hono';
import { z } from 'zod';
import { canSeeDesk, type User } from '../auth/users';
import type { AppDeps, AppEnv } from '../http/context';
import { conflict, forbidden, notFound } from '../http/errors';
import { ErrorResponse } from '../http/openapi';
import { parseBody, parseQuery, readJson } from '../http/validate';
import { dayString } from '../trades/schema';
import { beginImport, finishImport, getImport, getReconciliations, ImportStateError, listImports, reconcileImport } from './store';

export function mayImport(user: Pick<User, 'role'>): boolean {
  return user.role === 'service' || user.role === 'admin';
}

function assertMayImport(user: User) {
  if (!mayImport(user)) throw forbidden(`role ${user.role} may not record imports (service or admin only)`);
}

function assertDesk(user: User) {
  if (!canSeeDesk(user)) throw forbidden('imports and reconciliations cover the whole desk; traders may not see them');
}

const ImportRecordSchema = z
  .object({
    id: z.number().int(),
    file_name: z.string(),
    sha256: z.string(),
    size_bytes: z.number().int(),
    trading_day: z.string().meta({ format: 'date' }),
    status: z.enum(['running', 'done', 'failed', 'identical']),
    same_as: z.number().int().nullable().meta({ description: 'For "identical": the import that already read this content' }),
    rows: z.number().int().nullable(),
    stored: z.number().int(),
    duplicates: z.number().int(),
    conflicts: z.number().int(),
    rejected: z.number().int().nullable(),
    message: z.string().nullable(),
    started_at: z.string().meta({ format: 'date-time' }),
    finished_at: z.string().nullable().meta({ format: 'date-time' }),
  })
  .meta({ id: 'Import' });

const ImportStartBody = z.strictObject({
  file_name: z.string().regex(/^epex_trades_\d{8}\.csv$/, { error: 'must be epex_trades_YYYYMMDD.csv' }),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, { error: 'must be 64 lowercase hex digits' }),
  size_bytes: z.number().int().min(0),
  trading_day: dayString,
});

const ImportFinishBody = z.strictObject({
  status: z.enum(['done', 'failed']),
  rows: z.number().int().min(0),
  rejected: z.number().int().min(0),
  message: z.string().max(2000).optional(),
});

const ImportId = z.coerce.number({ error: 'must be an import id' }).int().positive();
const IdParam = z.strictObject({ id: ImportId });

const FieldDifference = z.object({ field: z.string(), file: z.unknown(), feed: z.unknown() });
const ReconciliationSchema = z
  .object({
    import_id: z.number().int(),
    file_name: z.string(),
    trading_day: z.string().meta({ format: 'date' }),
    computed_at: z.string().meta({ format: 'date-time' }),
    file_trades: z.number().int().meta({ description: 'Valid trades in the file' }),
    feed_trades: z.number().int().meta({ description: 'Feed trades executed on the trading day (local), not recalled' }),
    matched: z.number().int(),
    only_in_file: z.number().int().meta({ description: 'The feed missed them' }),
    only_in_feed: z.number().int().meta({ description: 'Executed that day per the feed, absent from the file' }),
    different: z.number().int(),
    recalled: z.number().int().meta({ description: 'Feed trades of the day the exchange recalled: expected to be absent from the file' }),
    items: z.object({
      only_in_file: z.array(z.string()),
      only_in_feed: z.array(z.string()),
      different: z.array(z.object({ trade_id: z.string(), fields: z.array(FieldDifference) })),
    }),
    truncated: z.boolean().meta({ description: 'An item list was cut at `limit`' }),
  })
  .meta({ id: 'Reconciliation' });

const ReconciliationQuery = z
  .strictObject({
    day: dayString.optional().meta({ description: 'Trading day (the date in the file name)' }),
    import_id: ImportId.optional(),
    limit: z.coerce.number().int().min(0).max(100_000).default(1000).meta({ description: 'Trade ids listed per kind' }),
  })
  .refine((q) => q.day !== undefined || q.import_id !== undefined, { error: 'day: give day=YYYY-MM-DD or import_id' });

const ImportsQuery = z.strictObject({
  day: dayString.optional().meta({ description: 'Trading day (the date in the file name)' }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

function stateError(error: unknown): never {
  if (error instanceof ImportStateError) throw conflict(error.message);
  throw error;
}

export function importsRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, openapi, clock } = deps;
  const app = new Hono<AppEnv>();

  openapi.add({
    method: 'post', path: '/v1/imports', tag: 'imports', summary: 'Start (or resume) recording the import of a trades file',
    description: 'Service or admin. Content already imported (same sha256) is recorded as "identical" and must not be uploaded again; an unfinished import of the same content is resumed, with the line ranges of the batches already stored.',
    body: { schema: ImportStartBody },
    responses: {
      200: {
        description: 'started | resumed | identical',
        schema: z.object({ outcome: z.enum(['started', 'resumed', 'identical']), import: ImportRecordSchema, same_as: ImportRecordSchema.optional(), done_batches: z.array(z.tuple([z.number().int(), z.number().int()])).optional() }),
      },
      400: { description: 'Invalid body', schema: ErrorResponse },
      403: { description: 'Not a service or admin user', schema: ErrorResponse },
    },
  });
  app.post('/', async (c) => {
    assertMayImport(c.get('user'));
    const body = parseBody(await readJson(c), ImportStartBody);
    return c.json(await beginImport(db, body, clock.now()), 200);
  });

  openapi.add({
    method: 'get', path: '/v1/imports', tag: 'imports', summary: 'Recorded imports, newest first',
    query: ImportsQuery,
    responses: { 200: { description: 'Imports', schema: z.array(ImportRecordSchema) }, 400: { description: 'Invalid query', schema: ErrorResponse }, 403: { description: 'Traders may not', schema: ErrorResponse } },
  });
  app.get('/', async (c) => {
    assertDesk(c.get('user'));
    const q = parseQuery(c, ImportsQuery);
    return c.json(await listImports(db, { trading_day: q.day, limit: q.limit }), 200);
  });

  openapi.add({
    method: 'get', path: '/v1/imports/{id}', tag: 'imports', summary: 'One import with its totals', params: IdParam,
    responses: { 200: { description: 'The import', schema: ImportRecordSchema }, 404: { description: 'No such import', schema: ErrorResponse } },
  });
  app.get('/:id', async (c) => {
    assertDesk(c.get('user'));
    const { id } = parseBody(c.req.param(), IdParam);
    const record = await getImport(db, id);
    if (!record) throw notFound(`id: no import ${id}`);
    return c.json(record, 200);
  });

  openapi.add({
    method: 'post', path: '/v1/imports/{id}/finish', tag: 'imports', summary: 'Close an import: done (all rows uploaded) or failed', params: IdParam,
    body: { schema: ImportFinishBody },
    responses: { 200: { description: 'The import with its totals', schema: ImportRecordSchema }, 409: { description: 'Not running', schema: ErrorResponse } },
  });
  app.post('/:id/finish', async (c) => {
    assertMayImport(c.get('user'));
    const { id } = parseBody(c.req.param(), IdParam);
    const body = parseBody(await readJson(c), ImportFinishBody);
    return c.json(await finishImport(db, id, body, clock.now()).catch(stateError), 200);
  });

  openapi.add({
    method: 'get', path: '/v1/imports/{id}/reconciliation', tag: 'imports', summary: 'The reconciliation of one import with the live feed', params: IdParam,
    query: z.strictObject({ limit: ReconciliationQuery.shape.limit }),
    responses: { 200: { description: 'The reconciliation', schema: ReconciliationSchema }, 404: { description: 'Not reconciled (yet)', schema: ErrorResponse } },
  });
  app.get('/:id/reconciliation', async (c) => {
    assertDesk(c.get('user'));
    const { id } = parseBody(c.req.param(), IdParam);
    const { limit } = parseQuery(c, z.strictObject({ limit: ReconciliationQuery.shape.limit }));
    const [found] = await getReconciliations(db, { import_id: id, limit });
    if (!found) throw notFound(`id: import ${id} has no reconciliation`);
    return c.json(found, 200);
  });

  return app;
}

export function reconciliationsRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, openapi, clock, tz } = deps;
  const app = new Hono<AppEnv>();

  openapi.add({
    method: 'get', path: '/v1/reconciliations', tag: 'imports', summary: 'Reconciliations of the nightly files with the live feed, by trading day or import',
    query: ReconciliationQuery,
    responses: { 200: { description: 'Reconciliations, newest import first', schema: z.array(ReconciliationSchema) }, 400: { description: 'Invalid query', schema: ErrorResponse } },
  });
  app.get('/', async (c) => {
    assertDesk(c.get('user'));
    const q = parseQuery(c, ReconciliationQuery);
    return c.json(await getReconciliations(db, { trading_day: q.day, import_id: q.import_id, limit: q.limit }), 200);
  });

  const ReconcileBody = z.strictObject({ import_id: z.number().int().positive(), limit: ReconciliationQuery.shape.limit });
  openapi.add({
    method: 'post', path: '/v1/reconciliations', tag: 'imports', summary: 'Reconcile a finished import with the live feed (again)',
    description: 'Computed in the database: file trades first stored by another source than the feed, feed trades executed on the trading day the file lacks, and file rows whose fields differ from the feed\'s.',
    body: { schema: ReconcileBody },
    responses: { 200: { description: 'The reconciliation', schema: ReconciliationSchema }, 409: { description: 'Import not finished', schema: ErrorResponse } },
  });
  app.post('/', async (c) => {
    assertMayImport(c.get('user'));
    const body = parseBody(await readJson(c), ReconcileBody);
    await reconcileImport(db, body.import_id, tz, clock.now()).catch(stateError);
    const [found] = await getReconciliations(db, { import_id: body.import_id, limit: body.limit });
    return c.json(found!, 200);
  });
  return app;
}
