// Browser sign-in: POST /v1/session sets an HttpOnly SameSite cookie; GET shows who is signed in.
import { Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { z } from 'zod';
import type { AppDeps, AppEnv } from '../http/context';
import { ApiError } from '../http/errors';
import { ErrorResponse } from '../http/openapi';
import { parseBody, readJson } from '../http/validate';
import { readCookie, sessionCookie } from './authenticator';
import { createSession, deleteSession, sessionTtlMs } from './users';

const requiredString = z.string({ error: (i) => (i.input === undefined ? 'is required' : `must be a string (got ${typeof i.input === 'object' ? JSON.stringify(i.input) : typeof i.input})`) }).min(1, { error: 'is required' });

export const SignIn = z.strictObject({
  username: requiredString,
  password: requiredString,
});

export const Me = z
  .object({ username: z.string(), role: z.enum(['admin', 'trader', 'analyst', 'service']), trader_id: z.string().nullable(), desk: z.boolean() })
  .meta({ id: 'Me' });

export function clientAddress(c: { env: unknown }): string {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress ?? 'local';
}

/** Public part: signing in. */
export function signInRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  deps.openapi.add({
    method: 'post', path: '/v1/session', tag: 'auth', summary: 'Sign in (browser): sets the session cookie', public: true,
    body: { schema: SignIn },
    responses: { 200: { description: 'Signed in', schema: Me }, 400: { description: 'Missing or malformed field', schema: ErrorResponse }, 401: { description: 'Wrong username or password', schema: ErrorResponse }, 429: { description: 'Too many failed attempts', schema: ErrorResponse } },
  });
  // Asking "who am I" without any credentials is no failure (a sign-in page asks it): 200
  // {signed_in: false}. Wrong credentials or an ended session are still 401 (sessionRoutes).
  app.get('/', async (c, next) => {
    const token = readCookie(c.req.header('cookie') ?? '', sessionCookie);
    if (c.req.header('authorization') || token || token === null) return next(); // a malformed cookie (null) too: 401 naming it
    return c.json({ signed_in: false });
  });
  app.post('/', async (c) => {
    const body = parseBody(await readJson(c), SignIn);
    const result = await deps.auth.password(body.username, body.password, clientAddress(c));
    if (!result.ok) throw new ApiError(result.status, result.message, result.retryAfterSeconds ? { 'Retry-After': String(result.retryAfterSeconds) } : {});
    const token = await createSession(deps.db, result.user.id, deps.clock.now());
    setCookie(c, sessionCookie, token, { httpOnly: true, sameSite: 'Strict', path: '/', secure: deps.cookieSecure, maxAge: sessionTtlMs / 1000 });
    const u = result.user;
    return c.json({ username: u.username, role: u.role, trader_id: u.trader_id, desk: u.role !== 'trader' });
  });
  return app;
}

/** Authenticated part: who am I, sign out. */
export function sessionRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  deps.openapi.add({
    method: 'get', path: '/v1/session', tag: 'auth', summary: 'The signed-in user, or signed_in: false without credentials',
    description: 'Without an Authorization header or session cookie: 200 `{"signed_in": false}`. Wrong credentials or an ended session: 401.',
    responses: { 200: { description: 'The user, or that nobody is signed in', schema: z.union([Me.extend({ signed_in: z.literal(true) }), z.object({ signed_in: z.literal(false) })]) } },
  });
  app.get('/', (c) => {
    const u = c.get('user');
    return c.json({ username: u.username, role: u.role, trader_id: u.trader_id, desk: u.role !== 'trader', signed_in: true });
  });
  deps.openapi.add({ method: 'delete', path: '/v1/session', tag: 'auth', summary: 'Sign out (browser)', responses: { 204: { description: 'Signed out' } } });
  app.delete('/', async (c) => {
    const token = getCookie(c, sessionCookie);
    if (token) await deleteSession(deps.db, token);
    deleteCookie(c, sessionCookie, { path: '/' });
    return c.body(null, 204);
  });
  return app;
}
