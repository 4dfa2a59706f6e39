// Users and roles. A trader is linked to her trader_id; admin, analyst and service see the desk.
import crypto from 'node:crypto';
import { z } from 'zod';
import type { Db } from '../db';
import { sql } from '../db';
import { locks } from '../db/locks';
import { channels } from '../live/events';
import { hashPassword, passwordProblem } from './passwords';

export const roles = ['admin', 'trader', 'analyst', 'service'] as const;
export const Role = z.enum(roles, { error: (i) => `must be one of ${roles.join(', ')} (got ${JSON.stringify(i.input)})` });
export type Role = z.infer<typeof Role>;

export interface User {
  id: number;
  username: string;
  role: Role;
  trader_id: string | null;
  disabled_at: Date | null;
  created_at: Date;
}

export interface UserWithHash extends User {
  password_hash: string;
}

/** Desk view: every trader's data. Traders see only their own. */
export function canSeeDesk(user: Pick<User, 'role'>): boolean {
  return user.role !== 'trader';
}

export function canWriteTrades(user: Pick<User, 'role'>): boolean {
  return user.role === 'admin' || user.role === 'service' || user.role === 'trader';
}

export class UserError extends Error {}

export async function addUser(db: Db, input: { username: string; password: string; role: Role; trader_id?: string | null }): Promise<User> {
  if (!usernamePattern.test(input.username)) throw new UserError(`username ${JSON.stringify(input.username)} must be 1-64 letters, digits or _ . @ -`);
  const problem = passwordProblem(input.password);
  if (problem) throw new UserError(`password ${problem}`);
  if (input.role === 'trader' && !input.trader_id) throw new UserError('a trader needs --trader-id: the trader_id whose trades she sees');
  const existing = await db.query(sql`SELECT 1 FROM users WHERE username = ${input.username}`);
  if (existing.length) throw new UserError(`user ${input.username} already exists`);
  const hash = await hashPassword(input.password);
  const [user] = await db.query<User>(sql`
    INSERT INTO users (username, password_hash, role, trader_id)
    VALUES (${input.username}, ${hash}, ${input.role}, ${input.trader_id ?? null})
    RETURNING id, username, role, trader_id, disabled_at, created_at`);
  return user!;
}

export async function listUsers(db: Db): Promise<User[]> {
  return db.query<User>(sql`SELECT id, username, role, trader_id, disabled_at, created_at FROM users ORDER BY username`);
}

export async function findUser(db: Db, username: string): Promise<UserWithHash | undefined> {
  const [row] = await db.query<UserWithHash>(sql`SELECT id, username, role, trader_id, disabled_at, created_at, password_hash FROM users WHERE username = ${username}`);
  return row;
}

/** Usernames as addUser allows them: anything else names no user. */
export const usernamePattern = /^[A-Za-z0-9_.@-]{1,64}$/;

export async function setPasswordHash(db: Db, id: number, hash: string): Promise<void> {
  await db.query(sql`UPDATE users SET password_hash = ${hash} WHERE id = ${id}`);
}

export async function disableUser(db: Db, username: string): Promise<boolean> {
  // The NOTIFY tells every server to end the user's live streams and forget cached credentials.
  const rows = await db.query(sql`
    WITH u AS (UPDATE users SET disabled_at = now() WHERE username = ${username} AND disabled_at IS NULL RETURNING id)
    SELECT id, pg_notify(${channels.sessionsEnded}, json_build_object('user_id', id, 'reason', 'disabled')::text) FROM u`);
  await db.query(sql`DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = ${username})`);
  return rows.length > 0;
}

export async function countUsers(db: Db): Promise<number> {
  const [row] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM users`);
  return row!.n;
}

/**
 * First start: with no users, create the admin from ADMIN_USER/ADMIN_PASSWORD; with neither
 * users nor those variables, refuse with the reason. Processes starting at once take turns, so
 * exactly one creates the admin and the others find it.
 */
export async function ensureAdmin(db: Db, admin: { user?: string; password?: string }): Promise<User | undefined> {
  if ((await countUsers(db)) > 0) return undefined;
  return db.exclusive(locks.firstAdmin, async () => {
    if ((await countUsers(db)) > 0) return undefined;
    if (!admin.user || !admin.password) {
      throw new UserError('there are no users yet: set ADMIN_USER and ADMIN_PASSWORD (at least 8 characters) for the first start, and the server creates that admin');
    }
    return addUser(db, { username: admin.user, password: admin.password, role: 'admin' });
  });
}

export const sessionTtlMs = 12 * 3_600_000;

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

export async function createSession(db: Db, userId: number, now: Date): Promise<string> {
  const token = crypto.randomBytes(32).toString('base64url');
  await db.query(sql`INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (${hashToken(token)}, ${userId}, ${new Date(now.getTime() + sessionTtlMs)})`);
  await db.query(sql`DELETE FROM sessions WHERE expires_at < ${now}`);
  return token;
}

export async function userForSession(db: Db, token: string, now: Date): Promise<User | undefined> {
  const [row] = await db.query<User>(sql`
    SELECT u.id, u.username, u.role, u.trader_id, u.disabled_at, u.created_at
    FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE s.token_hash = ${hashToken(token)} AND s.expires_at > ${now} AND u.disabled_at IS NULL`);
  return row;
}

export async function deleteSession(db: Db, token: string): Promise<void> {
  await db.query(sql`
    WITH s AS (DELETE FROM sessions WHERE token_hash = ${hashToken(token)} RETURNING user_id, token_hash)
    SELECT pg_notify(${channels.sessionsEnded}, json_build_object('user_id', user_id, 'session', token_hash, 'reason', 'signed out')::text) FROM s`);
}
