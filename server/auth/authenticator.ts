// Who is calling: HTTP Basic credentials (API clients) or a session cookie (browsers). Shared by
// the REST API and the Socket.IO handshake. Failed logins are rate-limited per address and user.
import crypto from 'node:crypto';
import type { Db } from '../db';
import type { Clock } from '../clock';
import { HashQueue } from './hash-queue';
import { hashPassword, needsRehash, params, verifyPassword } from './passwords';
import { findUser, setPasswordHash, usernamePattern, userForSession, type User } from './users';

export const sessionCookie = 'pd_session';

export type AuthResult =
  | { ok: true; user: User }
  | { ok: false; status: 400 | 401 | 429 | 503; message: string; retryAfterSeconds?: number };

export interface AuthenticatorOptions {
  /** Failures allowed per (address, username) within the window before 429. */
  maxFailures?: number;
  windowMs?: number;
  /** How long verified Basic credentials are trusted without hashing again. */
  cacheMs?: number;
  /** Password hashes run at once (each takes 128 MiB and most of a core for a moment). */
  hashConcurrency?: number;
  /** Sign-ins of one address that may wait for a hash; more are refused at once. */
  maxWaitingPerAddress?: number;
  /** (address, username) pairs whose failures are remembered; the oldest go first past this. */
  maxTracked?: number;
}

export class Authenticator {
  private failures = new Map<string, { count: number; first: number }>();
  private inFlight = new Map<string, Promise<AuthResult>>();
  private verified = new Map<string, { user: User; until: number }>();
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly cacheMs: number;
  private readonly maxTracked: number;
  private lastPrune = 0;
  /** Where password hashes wait their turn (tests look at `pending`). */
  readonly hashes: HashQueue;

  constructor(private db: Db, private clock: Clock, options: AuthenticatorOptions = {}) {
    this.maxFailures = options.maxFailures ?? 10;
    this.windowMs = options.windowMs ?? 15 * 60_000;
    this.cacheMs = options.cacheMs ?? 30_000;
    this.maxTracked = options.maxTracked ?? 100_000;
    this.hashes = new HashQueue(options.hashConcurrency ?? 2, options.maxWaitingPerAddress ?? 32);
  }

  async authenticate(headers: { authorization?: string | null; cookie?: string | null }, address: string): Promise<AuthResult> {
    if (headers.authorization) return this.basic(headers.authorization, address);
    const token = readCookie(headers.cookie ?? '', sessionCookie);
    if (token === null) return { ok: false, status: 401, message: `cookie ${sessionCookie}: malformed (a broken %-escape): sign in again` };
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
    const result = await this.password(decoded.slice(0, colon), decoded.slice(colon + 1), address);
    // A malformed username in Basic credentials is still a 401: the client's credentials are wrong.
    return !result.ok && result.status === 400 ? { ...result, status: 401, message: `malformed Authorization header: ${result.message}` } : result;
  }

  /**
   * Username and password, from Basic or the sign-in form. A failure is counted before the
   * password is hashed, so guesses sent in parallel meet the limit like guesses sent in turn.
   */
  async password(username: string, password: string, address: string): Promise<AuthResult> {
    if (!usernamePattern.test(username)) return { ok: false, status: 400, message: `username: must be 1-64 letters, digits or _ . @ - (got ${JSON.stringify(username.slice(0, 80))})` };
    const now = this.clock.now().getTime();
    const cacheKey = crypto.createHash('sha256').update(`${username}\0${password}`).digest('hex');
    const limitKey = `${address}|${username}`;
    let entry = this.failures.get(limitKey);
    if (entry && now - entry.first > this.windowMs) {
      this.failures.delete(limitKey);
      entry = undefined;
    }
    if (entry && entry.count >= this.maxFailures) {
      const retry = Math.max(1, Math.ceil((entry.first + this.windowMs - now) / 1000));
      return { ok: false, status: 429, message: `too many failed logins for ${username} from this address: try again in ${retry} s`, retryAfterSeconds: retry };
    }
    const cached = this.verified.get(cacheKey);
    if (cached && cached.until > now) return { ok: true, user: cached.user };
    // The same credentials from the same address already being checked (a page's parallel first
    // requests): one check, one reserved failure, for all of them. Different guesses each count.
    const flightKey = `${limitKey}\0${cacheKey}`;
    const inFlight = this.inFlight.get(flightKey);
    if (inFlight) return inFlight;
    const attempt = this.check(username, password, address, limitKey, cacheKey, entry, now).finally(() => this.inFlight.delete(flightKey));
    this.inFlight.set(flightKey, attempt);
    return attempt;
  }

  private async check(username: string, password: string, address: string, limitKey: string, cacheKey: string, entry: { count: number; first: number } | undefined, now: number): Promise<AuthResult> {
    // Reserve a failure now; a success gives it back.
    if (!entry) {
      entry = { count: 0, first: now };
      this.track(limitKey, entry, now);
    }
    entry.count += 1;
    const reserved = entry;
    const checked = await this.hashes.run(address, async () => {
      const user = await findUser(this.db, username);
      const valid = await verifyPassword(password, user ? user.password_hash : dummyHash);
      return { user, valid };
    }).catch((error: unknown) => {
      reserved.count -= 1; // our failure, not the caller's
      throw error;
    });
    if (!checked) {
      reserved.count -= 1;
      return { ok: false, status: 503, message: 'too many sign-ins from this address are waiting: try again in a second', retryAfterSeconds: 1 };
    }
    const { user, valid } = checked;
    if (!user || !valid || user.disabled_at) {
      return { ok: false, status: 401, message: user?.disabled_at && valid ? `user ${username} is disabled` : 'wrong username or password' };
    }
    if (this.failures.get(limitKey) === reserved) this.failures.delete(limitKey);
    if (needsRehash(user.password_hash)) void this.rehash(user.id, password);
    const { password_hash: _, ...plain } = user;
    if (this.verified.size > 10_000) this.verified.clear();
    this.verified.set(cacheKey, { user: plain, until: now + this.cacheMs });
    return { ok: true, user: plain };
  }

  /** Failed logins remembered: expired ones pruned, and never more than maxTracked. */
  get tracked(): number {
    return this.failures.size;
  }

  private track(key: string, entry: { count: number; first: number }, now: number): void {
    if (this.failures.size >= this.maxTracked || now - this.lastPrune > 60_000) {
      this.lastPrune = now;
      for (const [k, e] of this.failures) if (now - e.first > this.windowMs) this.failures.delete(k);
      // Still full of live entries: the oldest go (insertion order is the order of first failures).
      for (const k of this.failures.keys()) {
        if (this.failures.size < this.maxTracked) break;
        this.failures.delete(k);
      }
    }
    this.failures.set(key, entry);
  }

  /** A hash of weaker parameters than today's is replaced after a successful sign-in. */
  private async rehash(userId: number, password: string): Promise<void> {
    await this.hashes.run('rehash', async () => setPasswordHash(this.db, userId, await hashPassword(password))).catch(() => {});
  }

  /** Forgets the user's verified Basic credentials (disabled: refused from the next request on). */
  forgetUser(userId: number): void {
    for (const [k, v] of this.verified) if (v.user.id === userId) this.verified.delete(k);
  }
}

// Same cost for unknown users as for known ones, so timing does not reveal who exists.
const dummyHash = `scrypt$${params.N}$${params.r}$${params.p}$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=`;

/** The cookie's value; null when it is there but not a valid %-encoding. */
export function readCookie(header: string, name: string): string | undefined | null {
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k !== name) continue;
    try {
      return decodeURIComponent(v.join('='));
    } catch {
      return null;
    }
  }
  return undefined;
}
