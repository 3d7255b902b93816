/**
 * Slows down an address that keeps failing to authenticate, and only such an address's failures.
 *
 * express-rate-limit (under express-slow-down) counts a request when it starts; with
 * `skipSuccessfulRequests` it un-counts a successful one only when its response finishes. An SSE
 * watch never finishes, so each open watch stayed counted as a failure: more than `delayAfter`
 * watches from one address (agents behind one NAT) slowed every request from it by up to 5 s.
 * Instead, a request whose token is valid is skipped before it is counted (`skip`), so the
 * counter holds failed authentications and nothing else, and a valid token is never delayed.
 *
 * A counted request (a failure) says where it stands, so a client can tell a slow-down from a
 * slow server: `RateLimit-Policy` / `RateLimit` (IETF draft-ietf-httpapi-ratelimit-headers: q
 * failures per w seconds before answers slow down, r failures left, t seconds until the window
 * resets) and, once delayed, `Server-Timing: auth-failure-delay;dur=<ms>` (W3C Server Timing).
 */
import type { Request, RequestHandler } from 'express';
import { slowDown, type SlowDownInfo } from 'express-slow-down';
import type { Store } from '../store/store.js';
import { resolvePrincipal } from './auth.js';
import { Unauthenticated } from '../errors.js';

export interface AuthFailureSlowdownOptions {
  store: Store;
  /** Failures from one address within the window that are answered without delay. */
  failuresBeforeSlowdown: number;
  windowMs?: number;
  /** Added per failure beyond `failuresBeforeSlowdown`. */
  stepMs?: number;
  maxDelayMs?: number;
}

const POLICY = 'auth-failures';
const INFO = 'authFailures';

export function authFailureSlowdown(options: AuthFailureSlowdownOptions): RequestHandler[] {
  const { store, failuresBeforeSlowdown: delayAfter, windowMs = 60_000, stepMs = 250, maxDelayMs = 5_000 } = options;
  const limiter = slowDown({
    windowMs,
    delayAfter,
    delayMs: (used) => stepMs * (used - delayAfter),
    maxDelayMs,
    requestPropertyName: INFO,
    skip: async (req, res) => {
      try {
        await resolvePrincipal(store, req, res);
        return true;
      } catch (err) {
        // A store that cannot answer is not a failed authentication: `authenticate` reports it.
        return !(err instanceof Unauthenticated);
      }
    },
    // pacer never trusts X-Forwarded-For (docs/operations.md, "TLS behind a reverse proxy"): a
    // proxy that sends it is counted by its own address, and no stack trace is logged for it.
    validate: { delayMs: false, xForwardedForHeader: false },
  });
  const report: RequestHandler = (req, res, next) => {
    const info = (req as Request & { [INFO]?: SlowDownInfo })[INFO];
    if (info) {
      const resetSeconds = info.resetTime ? Math.max(0, Math.ceil((info.resetTime.getTime() - Date.now()) / 1000)) : Math.ceil(windowMs / 1000);
      res.set('RateLimit-Policy', `"${POLICY}";q=${delayAfter};w=${Math.ceil(windowMs / 1000)}`);
      res.set('RateLimit', `"${POLICY}";r=${info.remaining};t=${resetSeconds}`);
      if (info.delay > 0) res.set('Server-Timing', `auth-failure-delay;dur=${info.delay}`);
    }
    next();
  };
  return [limiter, report];
}
