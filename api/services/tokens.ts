/** Tokens: creation (the secret is shown once), revocation, and the first admin token. */
import { randomBytes } from 'node:crypto';
import { tokenCreateSchema, type TokenRecord } from '../contract/token.js';
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { tokenDigest } from '../http/auth.js';
import { parse } from '../http/validate.js';
import type { Store } from '../store/store.js';

export class TokenService {
  constructor(private readonly store: Store) {}

  async create(body: unknown, actor: string): Promise<{ token: TokenRecord; secret: string }> {
    const input = parse(tokenCreateSchema, body);
    const secret = `pacer_${randomBytes(32).toString('base64url')}`;
    const token = await this.store.createToken(
      { id: `tok_${randomBytes(6).toString('hex')}`, name: input.name, role: input.role, host: input.host ?? null, hash: tokenDigest(secret) },
      actor,
    );
    return { token, secret };
  }

  list(): Promise<TokenRecord[]> {
    return this.store.listTokens();
  }

  async revoke(id: string, actor: string): Promise<TokenRecord> {
    const token = await this.store.revokeToken(id, actor, (t, active) => {
      if (t.role === 'admin' && active.filter((a) => a.role === 'admin').length === 1) {
        throw new Conflict('this is the last active admin token; create another admin token before revoking it');
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
      const existing = await this.store.findTokenByHash(tokenDigest(envSecret));
      if (existing) {
        if (existing.revokedAt !== null) throw new Conflict('PACER_ADMIN_TOKEN was revoked; set another one');
        return { created: false };
      }
      await this.store.createToken({ id: `tok_${randomBytes(6).toString('hex')}`, name: 'admin (PACER_ADMIN_TOKEN)', role: 'admin', host: null, hash: tokenDigest(envSecret) }, 'pacer api');
      return { created: true };
    }
    if ((await this.store.listTokens()).length > 0) return { created: false };
    const secret = `pacer_${randomBytes(32).toString('base64url')}`;
    await this.store.createToken({ id: `tok_${randomBytes(6).toString('hex')}`, name: 'admin', role: 'admin', host: null, hash: tokenDigest(secret) }, 'pacer api');
    return { created: true, secret };
  }
}
