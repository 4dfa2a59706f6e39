// Who may do what with accounts and orders: traders act and read for their own trader_id only;
// analysts read everything and place nothing; admin and service act for any trader.
import { canSeeDesk, type User } from '../auth/users';
import { badRequest, forbidden } from '../http/errors';

/** The trader_id a write acts for (placing, cancelling, modifying). */
export function actingFor(user: User, traderId: string | undefined, what = 'place orders'): string {
  if (user.role === 'analyst') throw forbidden(`role analyst may read but not ${what}`);
  if (user.role === 'trader') {
    if (traderId !== undefined && traderId !== user.trader_id) throw forbidden(`trader_id: you may only ${what} for your own trader_id ${user.trader_id}`);
    return user.trader_id!;
  }
  if (traderId === undefined) throw badRequest(`trader_id: required (role ${user.role} acts for any trader: say which)`);
  return traderId;
}

/** The trader_id a read is for: a trader's own; for the desk roles the one asked for (required when `required`). */
export function readingFor(user: User, traderId: string | undefined, required: true): string;
export function readingFor(user: User, traderId: string | undefined, required?: false): string | undefined;
export function readingFor(user: User, traderId: string | undefined, required = false): string | undefined {
  if (!canSeeDesk(user)) {
    if (traderId !== undefined && traderId !== user.trader_id) throw forbidden(`trader_id: you may only see your own trader_id ${user.trader_id}`);
    return user.trader_id!;
  }
  if (required && traderId === undefined) throw badRequest('trader_id: required');
  return traderId;
}

/** Keyset cursors: opaque text for the client, values for us. */
export function encodeCursor(parts: (string | number)[]): string {
  return Buffer.from(parts.join('|')).toString('base64url');
}

export function decodeCursor(cursor: string | undefined, count: number): string[] | undefined {
  if (cursor === undefined) return undefined;
  const parts = Buffer.from(cursor, 'base64url').toString().split('|');
  if (parts.length !== count || parts.some((p) => !p)) throw badRequest('cursor: not a next_cursor of this list');
  return parts;
}
