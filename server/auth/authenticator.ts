// Who is calling: HTTP Basic credentials (API clients) or a session cookie (browsers). Shared by
// the REST API and the Socket.IO handshake. Failed logins are rate-limited per address and user.
import crypto from 'node:crypto';
import type { Db } from '../db';
import type { Clock } from '../clock';
import { verifyPassword } from './passwords';
import { findUser, userForSession, type User } from './users';

export const sessionCookie = 'pd_session';

export type AuthResult =
  | { ok: true; user: User }
  | { ok: false; status: 401 | 429; message: string; retryAfterSeconds?: number };

export interface AuthenticatorOptions {
  /** Failures allowed per (address, username) within the window before 429. */
  maxFailures?: number;
  windowMs?: number;
  /** How long verified Basic credentials are trusted without hashing again. */
  cacheMs?: number;
}

export class Authenticator {
  private failures = new Map<string, { count: number; first: number }>();
  private verified = new Map<string, { user: User; until: number }>();
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly cacheMs: number;

  constructor(private db: Db, private clock: Clock, options: AuthenticatorOptions = {}) {
    this.maxFailures = options.maxFailures ?? 10;
    this.windowMs = options.windowMs ?? 15 * 60_000;
    this.cacheMs = options.cacheMs ?? 30_000;
  }

  async authenticate(headers: { authorization?: string | null; cookie?: string | null }, address: string): Promise<AuthResult> {
    if (headers.authorization) return this.basic(headers.authorization, address);
    const token = readCookie(headers.cookie ?? '', sessionCookie);
    if (token) {
      const user = await userForSession(this.db, token, this.clock.now());
      if (user) return { ok: true, user };
      return { ok: false, status: 401, message: 'session expired or signed out: sign in again' };
    }
    return { ok: false, status: 401, message: 'authentication required: HTTP Basic credentials or a session cookie' };
  }

  async basic(header: string, address: string): Promise<AuthResult> {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    const decoded = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    if (!match || colon < 1) return { ok: false, status: 401, message: 'malformed Authorization header: expected "Basic base64(username:password)"' };
    return this.password(decoded.slice(0, colon), decoded.slice(colon + 1), address);
  }

  /** Username and password, from Basic or the sign-in form. */
  async password(username: string, password: string, address: string): Promise<AuthResult> {
    const now = this.clock.now().getTime();
    const limitKey = `${address}|${username}`;
    const failed = this.failures.get(limitKey);
    if (failed && now - failed.first > this.windowMs) this.failures.delete(limitKey);
    else if (failed && failed.count >= this.maxFailures) {
      const retry = Math.ceil((failed.first + this.windowMs - now) / 1000);
      return { ok: false, status: 429, message: `too many failed logins for ${username} from this address: try again in ${retry} s`, retryAfterSeconds: retry };
    }
    const cacheKey = crypto.createHash('sha256').update(`${username}\0${password}`).digest('hex');
    const cached = this.verified.get(cacheKey);
    if (cached && cached.until > now) return { ok: true, user: cached.user };

    const user = await findUser(this.db, username);
    const valid = user ? await verifyPassword(password, user.password_hash) : await verifyPassword(password, dummyHash);
    if (!user || !valid || user.disabled_at) {
      const entry = this.failures.get(limitKey) ?? { count: 0, first: now };
      entry.count += 1;
      this.failures.set(limitKey, entry);
      return { ok: false, status: 401, message: user?.disabled_at && valid ? `user ${username} is disabled` : 'wrong username or password' };
    }
    this.failures.delete(limitKey);
    const { password_hash: _, ...plain } = user;
    if (this.verified.size > 10_000) this.verified.clear();
    this.verified.set(cacheKey, { user: plain, until: now + this.cacheMs });
    return { ok: true, user: plain };
  }

  /** Forgets the user's verified Basic credentials (disabled: refused from the next request on). */
  forgetUser(userId: number): void {
    for (const [k, v] of this.verified) if (v.user.id === userId) this.verified.delete(k);
  }
}

// Same cost for unknown users as for known ones, so timing does not reveal who exists.
const dummyHash = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export function readCookie(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}
