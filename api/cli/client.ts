/**
 * The CLI's HTTP client: base URL, bearer token, JSON bodies, and RFC 9457 problems turned into
 * an Error that carries the status and the problem. Uses Node's global fetch, nothing else.
 */
import { closeSync, createWriteStream, fsyncSync, openSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Command, Option } from 'commander';
import type { Problem } from '../contract/problem.js';

export const DEFAULT_API = 'http://127.0.0.1:8080';
/** A CLI call should never hang forever on a stuck server. */
const REQUEST_TIMEOUT_MS = 30_000;

/** The API answered with an error status; `problem` is its problem document (or one made up for a non-problem body). */
export class ApiProblemError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail ?? problem.title);
    this.name = 'ApiProblemError';
  }
}

/** A mistake the CLI can explain without the API: no token, bad --api, network failure. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

export interface GlobalOptions {
  api: string;
  tokenFile?: string;
  json?: boolean;
}

/** Adds --api, --token-file and --json to a leaf command, so they work after the subcommand as users type them. */
export function withGlobalOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--api <url>', 'pacer API base URL').env('PACER_API').default(DEFAULT_API))
    .addOption(new Option('--token-file <file>', 'read the API token from this file instead of $PACER_TOKEN'))
    .addOption(new Option('--json', 'print the API\'s JSON instead of a table'));
}

export interface Reply<T> {
  status: number;
  headers: { get(name: string): string | null };
  body: T;
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

/** Normalizes --api: accepts http(s) URLs and bare host:port (taken as http). */
export function apiBaseUrl(value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CliError(`--api ${JSON.stringify(value)} is not a URL; expected e.g. ${DEFAULT_API}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`--api ${JSON.stringify(value)} must be an http:// or https:// URL`);
  }
  return url.toString().replace(/\/+$/, '');
}

/** The token: --token-file wins over $PACER_TOKEN, since it was given explicitly. */
export function resolveToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(tokenFile, 'utf8');
    } catch (e) {
      throw new CliError(`cannot read --token-file ${tokenFile}: ${(e as Error).message}`);
    }
    const token = text.trim();
    if (token === '') throw new CliError(`--token-file ${tokenFile} is empty; it should hold one API token`);
    return token;
  }
  const token = env.PACER_TOKEN?.trim();
  if (!token) {
    throw new CliError(
      'no API token: set PACER_TOKEN (export PACER_TOKEN=<token>) or pass --token-file FILE.\n' +
        'The first start of `pacer api` prints an admin token; an admin makes more with `pacer token create`.',
    );
  }
  return token;
}

export class PacerClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs = REQUEST_TIMEOUT_MS,
  ) {}

  static fromOptions(opts: GlobalOptions): PacerClient {
    return new PacerClient(apiBaseUrl(opts.api), resolveToken(opts.tokenFile));
  }

  /** A long-lived streaming GET (the watch stream): no timeout; the caller reads the body. */
  async openStream(path: string): Promise<Response> {
    try {
      return await fetch(this.baseUrl + path, { headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' } });
    } catch (e) {
      throw new CliError(`cannot reach the pacer API at ${this.baseUrl}: ${networkReason(e, this.timeoutMs)}`);
    }
  }

  get<T>(path: string): Promise<Reply<T>> {
    return this.request<T>('GET', path);
  }

  /**
   * GET `path` into `file` (created, never overwritten; written as it arrives, then fsync'ed), for
   * bodies that are not JSON (the store's backup). Throws ApiProblemError for a non-2xx answer,
   * leaving no file, and CliError when the API cannot be reached. No timeout: a backup of a big
   * store takes as long as it takes, and the server ends a stuck request itself.
   */
  async download(path: string, file: string): Promise<{ headers: Reply<unknown>['headers'] }> {
    const url = this.baseUrl + path;
    const { request } = url.startsWith('https:') ? await import('node:https') : await import('node:http');
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      request(url, { headers: { authorization: `Bearer ${this.token}` } }, resolve)
        .on('error', (e) => reject(new CliError(`cannot reach the pacer API at ${this.baseUrl}: ${networkReason(e, this.timeoutMs)}`)))
        .end();
    });
    const headers = { get: (name: string) => [res.headers[name.toLowerCase()] ?? []].flat().join(', ') || null };
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: asProblem makes one up
      }
      throw new ApiProblemError(status, asProblem({ status, statusText: res.statusMessage ?? '', headers, text }, parsed, text));
    }
    try {
      await pipeline(res, createWriteStream(file, { flags: 'wx', mode: 0o600 }));
      const fd = openSync(file, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') rmSync(file, { force: true });
      throw e;
    }
    return { headers };
  }

  /** One request. Resolves for 2xx; throws ApiProblemError for any other status, CliError when the API cannot be reached. */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<Reply<T>> {
    const url = this.baseUrl + path;
    const headers: Record<string, string> = {
      accept: 'application/json, application/problem+json',
      authorization: `Bearer ${this.token}`,
      ...options.headers,
    };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = options.contentType ?? 'application/json';
    }
    let res: RawReply;
    try {
      res = await send(url, method, headers, body, this.timeoutMs);
    } catch (e) {
      throw new CliError(`cannot reach the pacer API at ${this.baseUrl}: ${networkReason(e, this.timeoutMs)}`);
    }
    const { text } = res;
    const type = res.headers.get('content-type') ?? '';
    let parsed: unknown = text;
    if (/json/i.test(type) && text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.status >= 200 && res.status < 300) {
      return { status: res.status, headers: res.headers, body: parsed as T };
    }
    throw new ApiProblemError(res.status, asProblem(res, parsed, text));
  }
}

interface RawReply {
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  text: string;
}

/**
 * One request over node:http(s), body read whole. Not fetch: Node 20 loads its fetch (undici) on
 * first use, ~280 ms on this machine, more than the rest of `pacer class ls` (issue 11: a CLI that
 * answers at once; `npm run bench:cli`). The watch stream, long-lived anyway, keeps fetch.
 */
async function send(url: string, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<RawReply> {
  const { request } = url.startsWith('https:') ? await import('node:https') : await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const h = res.headers;
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          headers: { get: (name) => [h[name.toLowerCase()] ?? []].flat().join(', ') || null },
          text: Buffer.concat(chunks).toString('utf8'),
        });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { name: 'TimeoutError' })));
    req.on('error', reject);
    req.end(body);
  });
}

/** The problem document of an error reply; made up from the status when the body is not one (a proxy's HTML page…). */
function asProblem(res: RawReply, parsed: unknown, text: string): Problem {
  if (typeof parsed === 'object' && parsed !== null && typeof (parsed as Problem).title === 'string') {
    const p = parsed as Problem;
    return { ...p, status: typeof p.status === 'number' ? p.status : res.status };
  }
  const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return {
    type: 'about:blank',
    title: res.statusText || `HTTP ${res.status}`,
    status: res.status,
    detail: `HTTP ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''} (not a pacer API problem document; is --api right?)`,
  };
}

/** fetch() hides the real reason (ECONNREFUSED, ENOTFOUND…) in `cause`. */
function networkReason(e: unknown, timeoutMs: number): string {
  if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError')) {
    return `no answer within ${timeoutMs / 1000}s`;
  }
  const cause = e instanceof Error ? (e as Error & { cause?: unknown }).cause : undefined;
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    return [...new Set(cause.errors.map((x: unknown) => (x instanceof Error ? x.message : String(x))))].join('; ');
  }
  // node:http's own errors carry the code themselves ("connect ECONNREFUSED 127.0.0.1:9").
  const own = (e as { code?: string }).code;
  if (e instanceof Error && own && !cause) return e.message.includes(own) ? e.message : `${own}: ${e.message}`;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: string }).code;
    if (!cause.message) return code ?? 'network error';
    return code && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
  }
  return e instanceof Error ? e.message : String(e);
}

/** Path segment for a user-given name: encoded, so "a/b" cannot walk to another route. */
export function seg(name: string): string {
  return encodeURIComponent(name);
}
