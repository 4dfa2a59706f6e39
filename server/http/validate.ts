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
  rejectNul(raw);
  const parsed = schema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw badRequest(formatIssues(parsed.error.issues));
  return parsed.data;
}

/**
 * The database cannot store the NUL character in text or JSON: a 400 naming the field, instead
 * of the database's refusal (a 500) later on.
 */
export function rejectNul(value: unknown, path = ''): void {
  // Iterative: a deeply nested body must not overflow the stack.
  const todo: [unknown, string][] = [[value, path]];
  while (todo.length) {
    const [v, at] = todo.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\0')) throw badRequest(`${at || 'body'}: must not contain the NUL character (\\u0000)`);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) todo.push([v[i], at ? `${at}.${i}` : String(i)]);
    } else if (v && typeof v === 'object') {
      for (const [k, inner] of Object.entries(v).reverse()) {
        const name = at ? `${at}.${k}` : k;
        if (k.includes('\0')) throw badRequest(`${name.replaceAll('\0', '\\u0000')}: a field name must not contain the NUL character (\\u0000)`);
        todo.push([inner, name]);
      }
    }
  }
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
  rejectNul(value, prefix);
  const parsed = schema.safeParse(value, { reportInput: true });
  if (!parsed.success) throw badRequest(formatIssues(parsed.error.issues, prefix));
  return parsed.data;
}

export interface BodyLine {
  /** 1-based line number. */
  line: number;
  text: string;
  /** Set (and text empty) when the line was longer than maxLineChars: it was not kept. */
  tooLong?: boolean;
}

/**
 * The lines of a request body as they arrive, decoded as UTF-8. A line longer than
 * `maxLineChars` is reported (tooLong) without being held. Every `yieldEvery` lines the event
 * loop gets a turn, so that a large body does not hold up other requests while it is read.
 */
export async function* bodyLines(body: ReadableStream<Uint8Array> | null, options: { maxLineChars: number; yieldEvery?: number }): AsyncGenerator<BodyLine> {
  if (!body) return;
  const yieldEvery = options.yieldEvery ?? 256;
  const decoder = new TextDecoder('utf-8');
  let rest = '';
  let skipping = false;
  let line = 0;
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  const take = (text: string, tooLong: boolean): BodyLine => ({ line: ++line, text: tooLong ? '' : text.endsWith('\r') ? text.slice(0, -1) : text, ...(tooLong ? { tooLong } : {}) });
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    let text = rest + decoder.decode(chunk, { stream: true });
    let newline = text.indexOf('\n');
    while (newline >= 0) {
      yield take(text.slice(0, newline), skipping || newline > options.maxLineChars);
      skipping = false;
      if (line % yieldEvery === 0) await turn();
      text = text.slice(newline + 1);
      newline = text.indexOf('\n');
    }
    if (text.length > options.maxLineChars) {
      skipping = true;
      text = '';
    }
    rest = text;
  }
  rest += decoder.decode();
  if (rest.length || skipping) yield take(rest, skipping || rest.length > options.maxLineChars);
}
