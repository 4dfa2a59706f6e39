// GET /v1/feed/status and GET /v1/feed/dead-letters, answered from the database so any server
// process can answer for gateways running elsewhere.
import { Hono } from 'hono';
import { z } from 'zod';
import { sql } from '../db';
import type { AppDeps, AppEnv } from '../http/context';
import { canSeeDesk } from '../auth/users';
import { ApiError, forbidden } from '../http/errors';
import { ErrorResponse } from '../http/openapi';
import { parseQuery } from '../http/validate';
import { feedStatus } from './status';

const Counts = z.object({
  received: z.number().int(), stored: z.number().int(), duplicates: z.number().int(), conflicts: z.number().int(), dead_lettered: z.number().int(),
  recalls: z.number().int().meta({ description: 'Deals the exchange recalled (mistrades)' }),
  ignored: z.number().int().meta({ description: 'Frames whose seq was already handled: replays after a resume, redeliveries, messages another gateway committed' }),
});

const SessionStatusSchema = z.object({
  member: z.string().meta({ description: 'The member the exchange numbers its messages for (EXCHANGE_MEMBER)' }),
  committed_seq: z.number().int().meta({ description: 'Highest contiguous seq committed with its data: every reconnect and restart resumes from it' }),
  exchange_seq: z.number().int().meta({ description: 'Highest seq seen from the exchange' }),
  resets: z.number().int().meta({ description: 'Times the exchange restarted its numbering below ours' }),
  updated_at: z.string().meta({ format: 'date-time' }),
  gaps: z.array(z.object({
    from_seq: z.number().int(), to_seq: z.number().int(),
    detected_at: z.string().meta({ format: 'date-time' }),
    filled_at: z.string().nullable().meta({ description: 'When the replayed messages were committed; null while open' }),
    lost_at: z.string().nullable().meta({ description: 'When the exchange could not replay them after repeated requests (the nightly file has their deals)' }),
  })).meta({ description: "Today's gaps and every one still open, oldest first (at most the latest 200)" }),
}).meta({ id: 'ExchangeSessionStatus' });

export const FeedStatusSchema = z
  .object({
    connected: z.boolean().meta({ description: 'Whether at least one gateway is connected to the exchange' }),
    since: z.string().nullable().meta({ description: 'Since when connected (or disconnected), ISO-8601 UTC; null if no gateway ever ran' }),
    last_message_at: z.string().nullable(),
    counts: Counts.meta({ description: 'Summed over every gateway that ever ran against this database' }),
    disconnected_intervals: z.array(z.object({ from: z.string(), to: z.string().nullable() }))
      .meta({ description: "Today's (local market day) intervals in which no gateway was connected; `to` null while still down" }),
    sessions: z.array(SessionStatusSchema).meta({ description: 'The exchange session (protocol version 2) per member' }),
    store_failures: z.array(z.object({ gateway_id: z.string(), since: z.string().meta({ format: 'date-time' }), error: z.string() }))
      .meta({ description: 'Running gateways whose database keeps failing to store what the exchange sends (retried; empty when all is stored)' }),
  })
  .meta({ id: 'FeedStatus' });

export const DeadLetter = z
  .object({ id: z.number().int(), gateway_id: z.string(), received_at: z.string(), reason: z.string(), raw: z.string() })
  .meta({ id: 'DeadLetter' });

export const DeadLetterQuery = z.strictObject({
  limit: z.coerce.number({ error: 'must be an integer from 1 to 1000' }).int({ error: 'must be an integer from 1 to 1000' }).min(1, { error: 'must be at least 1' }).max(1000, { error: 'must be at most 1000' }).default(100),
  before_id: z.coerce.number({ error: 'must be an integer id' }).int({ error: 'must be an integer id' }).positive().optional().meta({ description: 'Page: only dead letters with a smaller id' }),
});

export function feedRoutes(deps: AppDeps): Hono<AppEnv> {
  const { db, tz, clock, openapi } = deps;
  const app = new Hono<AppEnv>();

  openapi.add({
    method: 'get', path: '/v1/feed/status', tag: 'feed', summary: 'Exchange gateway status: connection, counts, today\'s outages, the session\'s resume point and gaps',
    responses: { 200: { description: 'Status', schema: FeedStatusSchema }, 503: { description: 'The database cannot be read', schema: ErrorResponse } },
  });
  app.get('/status', async (c) => {
    const status = await feedStatus(db, tz, clock.now()).catch((error: Error) => {
      throw new ApiError(503, `database: cannot read the feed status (${error.message})`);
    });
    return c.json(status);
  });

  openapi.add({
    method: 'get', path: '/v1/feed/dead-letters', tag: 'feed', summary: 'Feed messages that could not be parsed or validated, latest first',
    query: DeadLetterQuery,
    description: 'Raw frames carry other traders\' deals: not for the trader role.',
    responses: { 200: { description: 'Dead letters', schema: z.array(DeadLetter) }, 400: { description: 'Invalid query', schema: ErrorResponse }, 403: { description: 'Traders may not see raw feed frames', schema: ErrorResponse } },
  });
  app.get('/dead-letters', async (c) => {
    const user = c.get('user');
    if (!canSeeDesk(user)) throw forbidden(`role ${user.role} may not see raw feed frames (they carry other traders' deals)`);
    const q = parseQuery(c, DeadLetterQuery);
    const rows = await db.query<{ id: number; gateway_id: string; received_at: Date; reason: string; raw: string }>(sql`
      SELECT id, gateway_id, received_at, reason, raw FROM feed_dead_letters
      WHERE ${q.before_id === undefined ? sql`TRUE` : sql`id < ${q.before_id}`}
      ORDER BY id DESC LIMIT ${q.limit}`);
    return c.json(rows.map((r) => ({ ...r, received_at: r.received_at.toISOString() })));
  });
  return app;
}
