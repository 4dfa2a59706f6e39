// The OpenAPI 3.1 document, built from the same zod schemas that validate requests: each route
// module registers its operations next to its handlers.
import { z } from 'zod';

export interface Operation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** OpenAPI path, e.g. /v1/trades/{id}. */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  query?: z.ZodObject;
  params?: z.ZodObject;
  body?: { schema?: z.ZodType; contentTypes?: string[]; description?: string };
  responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>;
  /** No authentication needed. */
  public?: boolean;
}

export const ErrorResponse = z
  .object({
    status_code: z.number().int().meta({ example: 400 }),
    message: z.string().meta({ example: 'delivery_day: must be a calendar date YYYY-MM-DD (got "2023-13-01")' }),
  })
  .meta({ id: 'Error' });

export class OpenApiRegistry {
  private operations: Operation[] = [];

  add(op: Operation): void {
    this.operations.push(op);
  }

  document(info: { version: string }): Record<string, unknown> {
    const components: Record<string, unknown> = {};
    const toSchema = (schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> => {
      // Schemas with a meta id become components; zod puts them under $defs, lifted here.
      const raw = JSON.stringify(z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any', reused: 'inline' }));
      const json = JSON.parse(raw.replaceAll('#/$defs/', '#/components/schemas/')) as Record<string, unknown>;
      delete json.$schema;
      const defs = (json.$defs ?? {}) as Record<string, Record<string, unknown>>;
      delete json.$defs;
      for (const [id, def] of Object.entries(defs)) {
        delete def.id;
        components[id] = def;
      }
      const id = (z.globalRegistry.get(schema) as { id?: string } | undefined)?.id;
      if (id && !json.$ref) {
        delete json.id;
        components[id] = json;
        return { $ref: `#/components/schemas/${id}` };
      }
      return json;
    };
    const paths: Record<string, Record<string, unknown>> = {};
    for (const op of this.operations) {
      const parameters: unknown[] = [];
      for (const [where, obj] of [['query', op.query], ['path', op.params]] as const) {
        if (!obj) continue;
        for (const [name, schema] of Object.entries(obj.shape)) {
          const s = schema as z.ZodType;
          parameters.push({ name, in: where, required: where === 'path' || !s.safeParse(undefined).success, schema: toSchema(s, 'input'), description: s.description });
        }
      }
      const responses: Record<string, unknown> = {};
      for (const [status, r] of Object.entries(op.responses)) {
        responses[status] = { description: r.description, ...(r.schema ? { content: { [r.contentType ?? 'application/json']: { schema: toSchema(r.schema, 'output') } } } : {}) };
      }
      if (!op.public) responses['401'] ??= { description: 'Missing or wrong credentials', content: { 'application/json': { schema: toSchema(ErrorResponse, 'output') } } };
      paths[op.path] ??= {};
      paths[op.path]![op.method] = {
        tags: [op.tag],
        summary: op.summary,
        ...(op.description ? { description: op.description } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(op.body
          ? { requestBody: { required: true, description: op.body.description, content: Object.fromEntries((op.body.contentTypes ?? ['application/json']).map((t) => [t, op.body?.schema ? { schema: toSchema(op.body.schema, 'input') } : {}])) } }
          : {}),
        responses,
        ...(op.public ? { security: [] } : {}),
      };
    }
    return {
      openapi: '3.1.0',
      info: { title: 'powerdesk API', version: info.version, description: 'Trades, reports, live feed status and meter data of the powerdesk trading desk. Errors share one shape: {"status_code", "message"}.' },
      servers: [{ url: '/' }],
      security: [{ basic: [] }, { session: [] }],
      components: {
        securitySchemes: {
          basic: { type: 'http', scheme: 'basic' },
          session: { type: 'apiKey', in: 'cookie', name: 'pd_session' },
        },
        schemas: components,
      },
      paths,
    };
  }
}
