import { checkIdentifier, sql, type SqlQuery } from './sql';
import type { BulkColumn, BulkOptions } from './types';

const typePattern = /^[a-z_][a-z0-9_ ]*(\(\d+(,\s*\d+)?\))?$/;

/** Rows per statement: one statement carries one array parameter per column, whatever the rows. */
export const bulkChunkRows = 5000;

/**
 * INSERT ... SELECT * FROM unnest($1::t1[], $2::t2[], ...): a fixed number of parameters per
 * chunk, the same statement on both adapters. Table, column names and types come from code.
 */
export function bulkInsertQuery(table: string, columns: readonly BulkColumn[], rows: readonly unknown[][], options: BulkOptions = {}): SqlQuery {
  checkIdentifier(table);
  const names = columns.map((c) => checkIdentifier(c.name));
  const strings: string[] = [`INSERT INTO ${table} (${names.join(', ')}) SELECT * FROM unnest(`];
  const values: unknown[] = [];
  columns.forEach((c, i) => {
    if (!typePattern.test(c.type)) throw new Error(`not a safe SQL type: ${c.type}`);
    values.push(rows.map((r) => normalise(r[i])));
    const last = i === columns.length - 1;
    // postgres.js sends an array of booleans as one boolean (porsager/postgres#471): they travel
    // as text ('t'/'f', see normalise) and are cast on the database side.
    const type = c.type === 'boolean' || c.type === 'bool' ? `text[]::${c.type}` : c.type;
    strings.push(`::${type}[]${last ? ')' : ', '}${last && options.ignoreConflicts ? ' ON CONFLICT DO NOTHING' : ''}`);
  });
  return sql(Object.assign(strings, { raw: strings }) as unknown as TemplateStringsArray, ...values);
}

function normalise(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return value.toString();
  return value;
}
