// Memory-hard password hashing with scrypt (node:crypto): N=2^17, r=8, p=1 (128 MiB per hash,
// OWASP's recommendation). Hashes made with other parameters (older ones: N=2^15) still verify,
// and needsRehash tells which ones to hash again at the next successful sign-in.
import crypto from 'node:crypto';
import { promisify } from 'node:util';

const scrypt = promisify(crypto.scrypt) as (pw: crypto.BinaryLike, salt: crypto.BinaryLike, len: number, opts: crypto.ScryptOptions) => Promise<Buffer>;
export const params = { N: 2 ** 17, r: 8, p: 1 };
const keyLength = 32;

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const hash = await scrypt(password, salt, keyLength, { ...params, maxmem: maxmem(params.N, params.r) });
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const cost = { N: Number(n), r: Number(r), p: Number(p) };
  if (!(cost.N >= 2 && cost.N <= 2 ** 20 && cost.r >= 1 && cost.r <= 32 && cost.p >= 1 && cost.p <= 16)) return false;
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, { ...cost, maxmem: maxmem(cost.N, cost.r) });
  return actual.length === expected.length && crypto.timingSafeEqual(actual, expected);
}

/** scrypt needs 128 * N * r bytes; node refuses above maxmem. */
function maxmem(N: number, r: number): number {
  return 128 * N * r + 16 * 1024 * 1024;
}

/** A stored hash made with weaker parameters than today's. */
export function needsRehash(stored: string): boolean {
  const [scheme, n, r, p] = stored.split('$');
  return scheme !== 'scrypt' || Number(n) < params.N || Number(r) < params.r || Number(p) < params.p;
}

/** A password a newcomer may pick: long enough to mean something. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < 8) return 'must be at least 8 characters';
  if (password.length > 1024) return 'must be at most 1024 characters';
  return undefined;
}
