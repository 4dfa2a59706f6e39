// SQL as SQL: a tagged template that keeps values apart from text, so every query is
// parameterised by construction. Fragments nest; identifiers are never interpolated.

const queryTag = Symbol('sql');

export interface SqlQuery {
  readonly [queryTag]: true;
  readonly strings: readonly string[];
  readonly values: readonly unknown[];
}

export function sql(strings: TemplateStringsArray, ...values: unknown[]): SqlQuery {
  return { [queryTag]: true, strings: [...strings], values };
}

/** Joins fragments with a separator (also a fragment), e.g. for optional WHERE clauses. */
sql.join = function join(parts: SqlQuery[], separator: SqlQuery): SqlQuery {
  if (parts.length === 0) return sql``;
  const strings: string[] = [];
  const values: unknown[] = [];
  parts.forEach((part, i) => {
    const piece = i === 0 ? [part] : [separator, part];
    for (const p of piece) {
      strings.push('');
      values.push(p);
    }
  });
  strings.push('');
  return { [queryTag]: true, strings, values };
};

export function isSqlQuery(value: unknown): value is SqlQuery {
  return typeof value === 'object' && value !== null && queryTag in value;
}

/** Renders to `$n` placeholders and a flat parameter list, in order. */
export function render(query: SqlQuery): { text: string; params: unknown[] } {
  const params: unknown[] = [];
  const walk = (q: SqlQuery): string => {
    let text = q.strings[0] ?? '';
    q.values.forEach((value, i) => {
      if (isSqlQuery(value)) text += walk(value);
      else {
        params.push(value instanceof Date ? value.toISOString() : value);
        text += `$${params.length}`;
      }
      text += q.strings[i + 1] ?? '';
    });
    return text;
  };
  return { text: walk(query), params };
}

const identifier = /^[a-z_][a-z0-9_]*$/;

/** Identifiers come from code, never from input; this refuses anything else. */
export function checkIdentifier(name: string): string {
  if (!identifier.test(name)) throw new Error(`not a safe SQL identifier: ${JSON.stringify(name)}`);
  return name;
}
