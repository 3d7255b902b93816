/** `pacer token create|ls|revoke`: API tokens (admin only). A secret is shown once, at creation. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { MAX_TTL_SECONDS, ROLES, type TokenRecord } from '../contract/token.js';
import { PacerClient, seg, withGlobalOptions, type GlobalOptions } from './client.js';
import { NONE, out, printJson, run, table } from './output.js';

export function tokenTable(items: TokenRecord[], now = Date.now()): string {
  return table(
    ['ID', 'NAME', 'ROLE', 'HOST', 'CREATED', 'CREATED-BY', 'EXPIRES', 'REVOKED'],
    items.map((t) => [t.id, t.name, t.role, t.host ?? NONE, t.createdAt, t.createdBy, expiresText(t.expiresAt, now), t.revokedAt ?? NONE]),
  );
}

/** "never", the time, or the time and "(expired)" once it is past. */
export function expiresText(expiresAt: string | null | undefined, now = Date.now()): string {
  // An API from before expiry sends no expiresAt: its tokens never expire.
  if (expiresAt === null || expiresAt === undefined) return 'never';
  return Date.parse(expiresAt) <= now ? `${expiresAt} (expired)` : expiresAt;
}

/** Lifetime units of `--ttl`, in seconds. */
const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 7 * 86_400 };

/**
 * `--ttl` as people write it, `90d` (s, m, h, d, w: seconds to weeks), in seconds. The error
 * follows commander's "argument '90x' is invalid.", so it says why and what is accepted.
 */
export function parseTtl(text: string): number {
  const m = /^([0-9]+)([smhdw])$/.exec(text);
  const seconds = m ? Number(m[1]) * TTL_UNITS[m[2]!]! : NaN;
  if (seconds >= 1 && seconds <= MAX_TTL_SECONDS) return seconds;
  const why = !m ? 'Not a whole number with one unit' : seconds < 1 ? 'No time at all' : `Longer than ${MAX_TTL_SECONDS / 86_400}d, the most a token may live`;
  throw new InvalidArgumentError(`${why}: give a whole number and one unit, s, m, h, d or w (seconds to weeks), like 90d, 12h or 2w, at most 3650d; leave --ttl out for a token that never expires`);
}

interface CreateOptions extends GlobalOptions {
  name: string;
  role: string;
  host?: string;
  ttl?: number;
}

function createCommand(): Command {
  return withGlobalOptions(new Command('create'))
    .description('create a token; its secret is printed once and cannot be shown again')
    .requiredOption('--name <name>', 'what the token is for (shown in the audit log)')
    .addOption(new Option('--role <role>', 'what it may do').choices(ROLES).makeOptionMandatory())
    .option('--host <name>', 'for role agent: the one host it may write')
    .option('--ttl <duration>', 'expire after this long: 90d, 12h, 2w (s, m, h, d, w; at most 3650d); without it the token never expires', parseTtl)
    .addHelpText(
      'after',
      '\nThe secret alone goes to stdout, so it can be captured:\n  export PACER_TOKEN=$(pacer token create --name ops --role editor)\n' +
        'A token for CI that stops working in 90 days:\n  pacer token create --name ci --role editor --ttl 90d\n',
    )
    .action(
      run(async (o: CreateOptions) => {
        const body = { name: o.name, role: o.role, ...(o.host !== undefined ? { host: o.host } : {}), ...(o.ttl !== undefined ? { ttlSeconds: o.ttl } : {}) };
        const created = (await PacerClient.fromOptions(o).request<TokenRecord & { token: string }>('POST', '/v1/tokens', { body })).body;
        if (o.json) return printJson(created);
        process.stderr.write(
          `created token ${created.id} (name ${created.name}, role ${created.role}${created.host ? `, host ${created.host}` : ''}, expires ${expiresText(created.expiresAt)})\n` +
            'WARNING: the secret below is shown only now and cannot be retrieved later; store it safely.\n',
        );
        out(created.token);
      }),
    );
}

function lsCommand(): Command {
  return withGlobalOptions(new Command('ls'))
    .alias('list')
    .description('list tokens (never their secrets)')
    .action(
      run(async (o: GlobalOptions) => {
        const list = (await PacerClient.fromOptions(o).get<{ items: TokenRecord[] }>('/v1/tokens')).body;
        if (o.json) return printJson(list);
        if (list.items.length === 0) {
          process.stderr.write('no tokens\n');
          return;
        }
        out(tokenTable(list.items));
      }),
    );
}

function revokeCommand(): Command {
  return withGlobalOptions(new Command('revoke'))
    .description('revoke a token: it stops working at once')
    .argument('<id>', 'token id, like tok_0123456789ab')
    .action(
      run(async (id: string, o: GlobalOptions) => {
        const t = (await PacerClient.fromOptions(o).request<TokenRecord>('DELETE', `/v1/tokens/${seg(id)}`)).body;
        if (o.json) return printJson(t);
        out(`revoked token ${t.id} (name ${t.name}, role ${t.role}) at ${t.revokedAt ?? 'now'}`);
      }),
    );
}

export function tokenCommand(): Command {
  return new Command('token')
    .description('API tokens (admin only)')
    .addCommand(createCommand())
    .addCommand(lsCommand())
    .addCommand(revokeCommand());
}
