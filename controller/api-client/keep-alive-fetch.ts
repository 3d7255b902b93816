/**
 * The part of fetch the API client uses, over node:http(s) with a keep-alive agent that never
 * opens more than `maxSockets` connections: requests beyond that wait for a free one instead of
 * opening another. Node 20's global fetch (undici) opens connections as needed and has no limit
 * the client could set without the undici package, which pacer does not depend on: an agent
 * whose heartbeats piled up held ~450 connections to the API (issue 17).
 *
 * Bodies come back as web streams (Readable.toWeb) in a standard Response, so the client reads
 * them as it reads fetch's; a request's signal aborts it, body included.
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

export interface KeepAliveFetch {
  fetch: typeof fetch;
  /** Closes every connection (the agent stops). */
  close(): void;
}

/** Statuses whose Response must have no body. */
const NULL_BODY = new Set([101, 204, 205, 304]);

export function keepAliveFetch(maxSockets: number): KeepAliveFetch {
  const options = { keepAlive: true, maxSockets, maxTotalSockets: maxSockets };
  const agents = { http: new http.Agent(options), https: new https.Agent(options) };
  const f = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(String(input));
      const secure = url.protocol === 'https:';
      const body = init.body as string | undefined;
      const headers = { ...(init.headers as Record<string, string> | undefined), ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) };
      const req = (secure ? https : http).request(url, { method: init.method ?? 'GET', headers, agent: secure ? agents.https : agents.http, signal: init.signal ?? undefined }, (res) => {
        const status = res.statusCode ?? 500;
        const responseHeaders = new Headers();
        for (const [k, v] of Object.entries(res.headers)) for (const x of [v ?? []].flat()) responseHeaders.append(k, x);
        if (NULL_BODY.has(status)) res.resume();
        resolve(new Response(NULL_BODY.has(status) ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage, headers: responseHeaders }));
      });
      // As fetch says it, with what happened (fetch's own "fetch failed" hides the cause).
      req.once('error', (err) => reject(err.name === 'AbortError' ? err : new TypeError(`fetch failed: ${err.message}`, { cause: err })));
      req.end(body);
    });
  return {
    fetch: f as typeof fetch,
    close: () => {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
