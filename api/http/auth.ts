/**
 * Bearer-token authentication and role checks.
 *
 * A token is looked up by its SHA-256 digest (the store keeps only an HMAC of that under its own
 * key); the digest found is then compared with crypto.timingSafeEqual. The lookup cannot leak the secret through timing:
 * an attacker controls only the preimage of the digest being searched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Role } from '../contract/token.js';
import type { Store } from '../store/store.js';
import { Forbidden, Unauthenticated } from '../errors.js';

export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
  /** For agent tokens: the one host this token may write. */
  host: string | null;
  /** When the token expires (ISO 8601); null: never. Its open watch streams end then. */
  expiresAt: string | null;
}

export function tokenDigest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function principalOf(res: Response): Principal {
  const p = res.locals.principal as Principal | undefined;
  if (!p) throw new Unauthenticated('no principal on this request');
  return p;
}

/** The actor recorded in the audit log. */
export function actorOf(res: Response): string {
  const p = principalOf(res);
  return `${p.name} (${p.tokenId})`;
}

/** The key on res.locals under which a request's one token resolution is kept. */
const RESOLUTION = 'principalResolution';

/**
 * Resolves the request's bearer token to its principal, once per request: the failed-login
 * slow-down (which must know whether the token is valid before it counts the request) and
 * `authenticate` share the one digest and store lookup. Rejects with Unauthenticated for a
 * missing, malformed, unknown, revoked or expired token (so an expired one counts as a failed
 * authentication, like any other); with the store's error when the lookup fails.
 */
export function resolvePrincipal(store: Store, req: Request, res: Response): Promise<Principal> {
  return (res.locals[RESOLUTION] ??= principalOfHeader(store, req.get('authorization'))) as Promise<Principal>;
}

async function principalOfHeader(store: Store, header: string | undefined): Promise<Principal> {
  const m = header === undefined ? null : /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
  if (!m) throw new Unauthenticated(header === undefined ? 'send an Authorization: Bearer <token> header' : 'the Authorization header is not "Bearer <token>"');
  const digest = tokenDigest(m[1]!);
  const token = await store.findTokenByHash(digest);
  // One answer for unknown and revoked tokens: a guesser learns nothing from a revoked one.
  if (!token || !timingSafeEqual(token.hash, digest) || token.revokedAt !== null) throw new Unauthenticated('unknown token, or a revoked one');
  // Said plainly: only the holder of this token's secret learns it, and of no other token.
  if (hasExpired(token.expiresAt)) {
    throw new Unauthenticated(`this token (${token.id}) expired at ${token.expiresAt}: an admin creates a new one with \`pacer token create\` (--ttl to make it expire again)`);
  }
  return { tokenId: token.id, name: token.name, role: token.role, host: token.host, expiresAt: token.expiresAt };
}

/** Whether a token with this expiry (null: never) is past it now. */
export function hasExpired(expiresAt: string | null, now = Date.now()): boolean {
  return expiresAt !== null && Date.parse(expiresAt) <= now;
}

export function authenticate(store: Store): RequestHandler {
  return async (req, res, next) => {
    res.locals.principal = await resolvePrincipal(store, req, res);
    next();
  };
}

export function allow(...roles: Role[]): RequestHandler {
  return (_req, res, next) => {
    const p = principalOf(res);
    if (!roles.includes(p.role)) throw new Forbidden(`role ${p.role} may not do this; it needs one of: ${roles.join(', ')}`);
    next();
  };
}

export const READERS: Role[] = ['admin', 'editor', 'viewer'];
export const CLASS_READERS: Role[] = ['admin', 'editor', 'viewer', 'agent'];
export const EDITORS: Role[] = ['admin', 'editor'];
