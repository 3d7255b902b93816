/** Tokens: creation (the secret is shown once), revocation, and the first admin token. */
import { randomBytes } from 'node:crypto';
import { tokenCreateSchema, type TokenRecord } from '../contract/token.js';
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { tokenDigest } from '../http/auth.js';
import { parse } from '../http/validate.js';
import type { Store } from '../store/store.js';

/** What a chosen admin secret must reach by estimatedBits: beyond any online guessing. */
export const MIN_ADMIN_TOKEN_BITS = 64;

/**
 * A simple, deliberately crude strength estimate: the secret is cut to its shortest repeating
 * unit (`password1password1…` to `password1`), and that unit's length is multiplied by the Shannon
 * entropy of its own character frequencies. Repetition and tiny alphabets score low (`aaaa…` is 0
 * bits, `abab…` 2) and random secrets high (a 32-character base64 one about 150). It cannot see
 * dictionary words: it is a floor on carelessness, not a proof of strength.
 */
export function estimatedBits(secret: string): number {
  const chars = [...secret];
  let period = 1;
  while (period < chars.length && !chars.every((c, i) => i < period || c === chars[i - period])) period++;
  const unit = chars.slice(0, period);
  const counts = new Map<string, number>();
  for (const c of unit) counts.set(c, (counts.get(c) ?? 0) + 1);
  let perChar = 0;
  for (const n of counts.values()) perChar -= (n / unit.length) * Math.log2(n / unit.length);
  return perChar * unit.length;
}

export class TokenService {
  constructor(private readonly store: Store) {}

  async create(body: unknown, actor: string): Promise<{ token: TokenRecord; secret: string }> {
    const input = parse(tokenCreateSchema, body);
    const secret = `pacer_${randomBytes(32).toString('base64url')}`;
    const token = await this.store.createToken(
      { id: `tok_${randomBytes(6).toString('hex')}`, name: input.name, role: input.role, host: input.host ?? null, hash: tokenDigest(secret), ttlSeconds: input.ttlSeconds ?? null },
      actor,
    );
    return { token, secret };
  }

  list(): Promise<TokenRecord[]> {
    return this.store.listTokens();
  }

  async revoke(id: string, actor: string): Promise<TokenRecord> {
    // An admin token that expires cannot be the last way in: once it expired, nobody could make
    // another. So one active admin token that never expires always stays (the first one, made at
    // bootstrap, never expires), and any that expire may be revoked.
    const token = await this.store.revokeToken(id, actor, (t, active) => {
      if (t.role === 'admin' && t.expiresAt === null && active.filter((a) => a.role === 'admin' && a.expiresAt === null).length === 1) {
        throw new Conflict('this is the last active admin token that never expires; create another admin token without a ttl before revoking it');
      }
    });
    if (!token) throw new NotFound(`token ${id} does not exist`);
    return token;
  }

  /**
   * Makes sure an admin can get in. With PACER_ADMIN_TOKEN set, that secret becomes an admin
   * token (once). Otherwise, when the store has no token at all, a new admin token is created
   * and its secret returned, to be printed once.
   */
  async bootstrap(envSecret: string | undefined): Promise<{ created: boolean; secret?: string }> {
    if (envSecret !== undefined) {
      if (envSecret.length < 20 || !/^[\x21-\x7e]+$/.test(envSecret)) {
        throw new InvalidInput('PACER_ADMIN_TOKEN must be at least 20 printable ASCII characters without spaces');
      }
      const bits = estimatedBits(envSecret);
      if (bits < MIN_ADMIN_TOKEN_BITS) {
        throw new InvalidInput(
          `PACER_ADMIN_TOKEN is too easy to guess: about ${Math.floor(bits)} bits by a simple estimate (its length times the entropy of its characters), and at least ${MIN_ADMIN_TOKEN_BITS} are needed; ` +
            'use a random secret, e.g. `openssl rand -base64 32`',
        );
      }
      const existing = await this.store.findTokenByHash(tokenDigest(envSecret));
      if (existing) {
        if (existing.revokedAt !== null) throw new Conflict('PACER_ADMIN_TOKEN was revoked; set another one');
        return { created: false };
      }
      await this.store.createToken({ id: `tok_${randomBytes(6).toString('hex')}`, name: 'admin (PACER_ADMIN_TOKEN)', role: 'admin', host: null, hash: tokenDigest(envSecret), ttlSeconds: null }, 'pacer api');
      return { created: true };
    }
    if ((await this.store.listTokens()).length > 0) return { created: false };
    const secret = `pacer_${randomBytes(32).toString('base64url')}`;
    await this.store.createToken({ id: `tok_${randomBytes(6).toString('hex')}`, name: 'admin', role: 'admin', host: null, hash: tokenDigest(secret), ttlSeconds: null }, 'pacer api');
    return { created: true, secret };
  }
}
