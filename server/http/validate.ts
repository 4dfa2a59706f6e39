// Reading and validating what comes in over HTTP: query strings and JSON bodies.
import type { Context } from 'hono';
import type { z } from 'zod';
import { badRequest, formatIssues } from './errors';

export function parseQuery<S extends z.ZodObject>(c: Context, schema: S): z.infer<S> {
  const raw: Record<string, string> = {};
  for (const [k, values] of Object.entries(c.req.queries())) {
    if (values.length > 1) throw badRequest(`${k}: given ${values.length} times; give it once`);
    raw[k] = values[0]!;
  }
  const parsed = schema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw badRequest(formatIssues(parsed.error.issues));
  return parsed.data;
}

export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (!text.trim()) throw badRequest('body: empty; expected JSON');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest(`body: not valid JSON (${(error as Error).message})`);
  }
}

export function parseBody<S extends z.ZodType>(value: unknown, schema: S, prefix = ''): z.infer<S> {
  const parsed = schema.safeParse(value, { reportInput: true });
  if (!parsed.success) throw badRequest(formatIssues(parsed.error.issues, prefix));
  return parsed.data;
}
