/** `pacer token create|ls|revoke`: API tokens (admin only). A secret is shown once, at creation. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseTtl, ROLES, type TokenRecord } from '../contract/token.js';
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

function ttlOption(value: string): number {
  try {
    return parseTtl(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
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
    .option('--ttl <duration>', 'expire after this long: 90d, 12h, 2w (s, m, h, d, w; at most 3650d); without it the token never expires', ttlOption)
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
