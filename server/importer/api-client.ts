// The importer's only way to the data: the REST API, with retries and backoff while it is
// unreachable (connection refused, 5xx, 429 with Retry-After). Other 4xx are errors of ours.
import { apiBase } from '../http/api-url';
import type { Logger } from '../log';

export class ApiRequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ApiRequestError';
  }
}

export class StoppedError extends Error {
  constructor() {
    super('stopped');
    this.name = 'StoppedError';
  }
}

export interface ApiClientOptions {
  url: string;
  user: string;
  password: string;
  log: Logger;
  /** First retry delay; doubles up to maxDelayMs, with jitter. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Aborting stops waiting and retrying (importer shutdown). */
  signal?: AbortSignal;
}

export interface ApiState {
  reachable: boolean;
  /** Why the last request failed, while it keeps failing. */
  lastError?: string;
  since: Date;
}

export class ApiClient {
  readonly state: ApiState = { reachable: true, since: new Date() };
  private readonly auth: string;
  private readonly base: string;

  constructor(private readonly options: ApiClientOptions) {
    this.auth = `Basic ${Buffer.from(`${options.user}:${options.password}`).toString('base64')}`;
    // http://host:8080 and http://host:8080/v1 mean the same server: every path here starts with /v1.
    this.base = apiBase(options.url).base;
  }

  /** JSON request, retried until it gets an answer that is not a transient failure. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let delay = this.options.initialDelayMs ?? 250;
    const maxDelay = this.options.maxDelayMs ?? 15_000;
    for (let attempt = 1; ; attempt += 1) {
      if (this.options.signal?.aborted) throw new StoppedError();
      let wait: number | undefined;
      let problem: string;
      try {
        const res = await fetch(`${this.base}${path}`, {
          method,
          headers: { authorization: this.auth, ...(payload ? { 'content-type': 'application/json' } : {}) },
          body: payload,
          signal: this.options.signal,
        });
        const text = await res.text();
        if (res.ok) {
          this.markReachable();
          return (text ? JSON.parse(text) : undefined) as T;
        }
        const message = (() => { try { return (JSON.parse(text) as { message?: string }).message ?? text; } catch { return text; } })();
        if (res.status !== 429 && res.status < 500) throw new ApiRequestError(res.status, `${method} ${path}: ${res.status} ${message}`);
        // 502/503/504 and 429 mean "not now"; a plain 500 is a fault that retrying rarely cures.
        if (res.status === 500 && attempt >= 5) throw new ApiRequestError(res.status, `${method} ${path}: ${res.status} ${message} (after ${attempt} attempts)`);
        problem = `${res.status} ${message}`;
        const retryAfter = res.headers.get('retry-after');
        if (retryAfter !== null && /^\d+$/.test(retryAfter.trim())) wait = Math.min(Number(retryAfter) * 1000, 300_000);
      } catch (error) {
        if (error instanceof ApiRequestError) throw error;
        if (this.options.signal?.aborted) throw new StoppedError();
        const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
        problem = cause?.code ?? cause?.message ?? (error as Error).message;
      }
      if (this.state.reachable || attempt === 1 || attempt % 10 === 0) {
        this.options.log.warn('API unavailable; retrying', { method, path, problem, attempt, retry_in_ms: wait ?? delay });
      }
      this.markUnreachable(problem);
      await this.sleep(wait ?? delay * (0.75 + Math.random() * 0.5));
      delay = Math.min(delay * 2, maxDelay);
    }
  }

  /**
   * Readiness: one request with our credentials (GET /v1/session). Undefined when the API accepts
   * them; otherwise why not (wrong credentials, a disabled user, not a powerdesk API, unreachable).
   */
  async credentialsProblem(timeoutMs = 5000): Promise<string | undefined> {
    const url = `${this.base}/v1/session`;
    let res: Response;
    try {
      res = await fetch(url, { headers: { authorization: this.auth, accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
    } catch (error) {
      const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
      return `API ${this.base} unreachable: ${cause?.code ?? cause?.message ?? (error as Error).message}`;
    }
    const text = await res.text();
    const type = res.headers.get('content-type') ?? 'no content type';
    if (!type.includes('json')) return `API ${url} answered ${res.status} with ${type}, not JSON: API_URL must be the powerdesk server, e.g. http://localhost:8080`;
    const message = (() => { try { return (JSON.parse(text) as { message?: string }).message ?? text; } catch { return text; } })();
    if (res.status === 401) return `API ${this.base} refused the credentials of API_USER ${JSON.stringify(this.options.user)} (401 ${message}): check API_USER and API_PASSWORD`;
    if (res.status === 429) return `API ${this.base} is refusing API_USER ${JSON.stringify(this.options.user)} for now after failed sign-ins (429 ${message})`;
    if (!res.ok) return `API ${url} answered ${res.status}: ${message}`;
    return undefined;
  }

  private markReachable() {
    if (!this.state.reachable) {
      this.options.log.info('API reachable again', { url: this.base });
      Object.assign(this.state, { reachable: true, lastError: undefined, since: new Date() });
    }
  }

  private markUnreachable(problem: string) {
    if (this.state.reachable) Object.assign(this.state, { reachable: false, since: new Date() });
    this.state.lastError = problem;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.options.signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
      const onAbort = () => { clearTimeout(timer); reject(new StoppedError()); };
      this.options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
