/**
 * A budget of failed authentications for the whole server, across all source addresses.
 *
 * The per-address slow-down (auth-failure-slowdown.ts) does not stop a guesser with many
 * addresses: 200 loopback addresses made 1,800 guesses in 3.4 s. Here every failed
 * authentication counts against one budget per fixed window. Once it is spent, the server is
 * locked until the window ends: only tokens that authenticated before the lock-out began are
 * let in, and every other request, a correct guess included, is answered 429 alike. So no more
 * than `failures` guesses per window can be checked, whatever their sources, while the agents
 * and people already at work go on. A token first used during a lock-out waits for its end.
 */
import type { RequestHandler } from 'express';
import { Gauge, Counter, type Registry } from 'prom-client';
import type { Store } from '../store/store.js';
import { resolvePrincipal } from './auth.js';
import { TooManyRequests, Unauthenticated } from '../errors.js';

export interface AuthFailureBudgetOptions {
  store: Store;
  /** Failed authentications per window, from all addresses together, before the lock-out. */
  failures: number;
  windowMs?: number;
  registry: Registry;
  now?: () => number;
}

export function authFailureBudget(options: AuthFailureBudgetOptions): RequestHandler {
  const { store, failures: budget, windowMs = 60_000, now = Date.now } = options;
  let windowStart = now();
  let failed = 0;
  /** Ids of tokens that authenticated while the server was not locked. */
  const known = new Set<string>();
  const window = () => {
    if (now() - windowStart >= windowMs) {
      windowStart = now();
      failed = 0;
    }
  };
  const locked = () => {
    window();
    return failed >= budget;
  };
  new Gauge({
    name: 'pacer_api_auth_locked_out',
    help: '1 while the failed-authentication budget of the window is spent: only tokens already known are let in',
    registers: [options.registry],
    collect() {
      this.set(locked() ? 1 : 0);
    },
  });
  const failuresTotal = new Counter({ name: 'pacer_api_auth_failures_total', help: 'Failed authentications, all addresses', registers: [options.registry] });
  const refusedTotal = new Counter({ name: 'pacer_api_auth_locked_out_refusals_total', help: 'Requests refused with 429 during a lock-out', registers: [options.registry] });

  return async (req, res, next) => {
    const wasLocked = locked();
    let tokenId: string | undefined;
    try {
      tokenId = (await resolvePrincipal(store, req, res)).tokenId;
    } catch (err) {
      // A store that cannot answer is not a failed authentication: `authenticate` reports it.
      if (!(err instanceof Unauthenticated)) return next();
      failed++;
      failuresTotal.inc();
      if (!wasLocked) return next(); // `authenticate` answers 401
    }
    if (tokenId !== undefined && (!wasLocked || known.has(tokenId))) {
      known.add(tokenId);
      return next();
    }
    refusedTotal.inc();
    const retryAfter = Math.max(1, Math.ceil((windowStart + windowMs - now()) / 1000));
    throw new TooManyRequests(
      `too many failed authentications on this server (${budget} within ${Math.ceil(windowMs / 1000)} s, from all addresses): until the window ends, only tokens already in use are accepted; retry after ${retryAfter} s`,
      { 'Retry-After': String(retryAfter) },
    );
  };
}
