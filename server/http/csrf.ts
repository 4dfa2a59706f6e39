// Writes only from the desk's own pages or from API clients, never from another site's page that
// rides on the browser's cookie or remembered Basic credentials. A browser says where a request
// comes from (Origin, Sec-Fetch-Site): a write from another origin is refused, whatever the
// credentials. A body must say what it is in a type no HTML form can send (forms send only
// text/plain, application/x-www-form-urlencoded and multipart/form-data, and a page's script can
// send any other type to another origin only after a preflight, which this server never grants).
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors';

/** The body types of the API: JSON everywhere, NDJSON and CSV where a route documents them. */
export const bodyTypes = ['application/json', 'application/x-ndjson', 'application/ndjson', 'application/jsonl', 'text/csv', 'application/csv'];

const writes = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Why a write is refused as cross-site, or undefined. The origin must be this server as the
 * request names it (`Host`, or `X-Forwarded-Host` from a proxy); a Host without a port (nginx's
 * `$host`) is matched by host name alone.
 */
export function crossSite(headers: { origin?: string; host?: string; forwardedHost?: string; fetchSite?: string }): string | undefined {
  if (headers.fetchSite === 'cross-site') return 'Sec-Fetch-Site: the request comes from another site';
  if (headers.origin === undefined) return undefined;
  let origin: URL;
  try {
    origin = new URL(headers.origin);
  } catch {
    return `Origin: ${JSON.stringify(headers.origin.slice(0, 100))} is not an origin of this server`;
  }
  const names = [headers.host, ...(headers.forwardedHost ?? '').split(',')].map((h) => h?.trim().toLowerCase()).filter((h): h is string => !!h);
  const same = names.some((h) => (/:\d+$/.test(h) ? origin.host.toLowerCase() === h : origin.hostname.toLowerCase() === h));
  if (!same) return `Origin: ${JSON.stringify(headers.origin.slice(0, 100))} is not this server (${headers.host ?? 'no Host'})`;
  return undefined;
}

export function writeGuard(): MiddlewareHandler {
  return async (c, next) => {
    if (!writes.has(c.req.method)) return next();
    const refused = crossSite({ origin: c.req.header('origin'), host: c.req.header('host'), forwardedHost: c.req.header('x-forwarded-host'), fetchSite: c.req.header('sec-fetch-site') });
    if (refused) throw new ApiError(403, `cross-site write refused: ${refused}`);
    const length = c.req.header('content-length');
    const hasBody = (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined;
    if (hasBody) {
      const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (!bodyTypes.includes(type)) throw new ApiError(400, `content-type: must be application/json (or, where documented, application/x-ndjson or text/csv); got ${JSON.stringify(type || 'none')}`);
    }
    return next();
  };
}
