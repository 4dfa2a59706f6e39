// API_URL has one meaning for every client of the REST API (report tool, importer): the server's
// base URL. Both `http://host:8080` and `http://host:8080/v1` are accepted; clients append /v1/….

export class ApiUrlError extends Error {}

export interface ApiBase {
  /** The server's base URL without a trailing slash and without /v1, e.g. http://host:8080 or http://host/powerdesk. */
  base: string;
  /** The origin only, e.g. http://host:8080. */
  origin: string;
  /** The path prefix before /v1 ('' or e.g. /powerdesk): Socket.IO lives at `${prefix}/socket.io`. */
  prefix: string;
}

/** Parses API_URL; throws ApiUrlError naming the variable and what was wrong. */
export function apiBase(raw: string, variable = 'API_URL'): ApiBase {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new ApiUrlError(`${variable}: ${JSON.stringify(raw)} is not a URL; give the server's address such as http://localhost:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ApiUrlError(`${variable}: must be an http:// or https:// URL such as http://localhost:8080 (got ${JSON.stringify(raw)})`);
  if (url.search || url.hash) throw new ApiUrlError(`${variable}: must not have a query or fragment (got ${JSON.stringify(raw)})`);
  const prefix = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return { base: `${url.origin}${prefix}`, origin: url.origin, prefix };
}
