// The one error shape of the API: {"status_code": 400, "message": "delivery_day: ..."}.
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';

export class ApiError extends Error {
  constructor(readonly status: ContentfulStatusCode, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (message: string) => new ApiError(400, message);
export const forbidden = (message: string) => new ApiError(403, message);
export const notFound = (message: string) => new ApiError(404, message);
export const conflict = (message: string) => new ApiError(409, message);

export function errorBody(status: number, message: string) {
  return { status_code: status, message };
}

export function sendError(c: Context, error: ApiError) {
  for (const [k, v] of Object.entries(error.headers)) c.header(k, v);
  return c.json(errorBody(error.status, error.message), error.status);
}

/** One line naming each offending field and why, e.g. "price: must be an integer (got 20.5)". */
export function formatIssues(issues: readonly z.core.$ZodIssue[], prefix = ''): string {
  return issues
    .map((issue) => {
      const path = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
      let message = issue.message;
      if (issue.path.length > 0 && (issue as { input?: unknown }).input === undefined && issue.code !== 'custom') message = 'is required';
      if (issue.code === 'unrecognized_keys') return `${path ? `${path}: ` : ''}unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      return path ? `${path}: ${message}` : message;
    })
    .join('; ');
}
