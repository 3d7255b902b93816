/** `pacer token create|ls|revoke`: API tokens (admin only). A secret is shown once, at creation. */
import { Command, Option } from 'commander';
import { ROLES, type TokenRecord } from '../contract/token.js';
import { PacerClient, seg, withGlobalOptions, type GlobalOptions } from './client.js';
import { NONE, out, printJson, run, table } from './output.js';

export function tokenTable(items: TokenRecord[]): string {
  return table(
    ['ID', 'NAME', 'ROLE', 'HOST', 'CREATED', 'CREATED-BY', 'REVOKED'],
    items.map((t) => [t.id, t.name, t.role, t.host ?? NONE, t.createdAt, t.createdBy, t.revokedAt ?? NONE]),
  );
}

interface CreateOptions extends GlobalOptions {
  name: string;
  role: string;
  host?: string;
}

function createCommand(): Command {
  return withGlobalOptions(new Command('create'))
    .description('create a token; its secret is printed once and cannot be shown again')
    .requiredOption('--name <name>', 'what the token is for (shown in the audit log)')
    .addOption(new Option('--role <role>', 'what it may do').choices(ROLES).makeOptionMandatory())
    .option('--host <name>', 'for role agent: the one host it may write')
    .addHelpText(
      'after',
      '\nThe secret alone goes to stdout, so it can be captured:\n  export PACER_TOKEN=$(pacer token create --name ops --role editor)\n',
    )
    .action(
      run(async (o: CreateOptions) => {
        const body = { name: o.name, role: o.role, ...(o.host !== undefined ? { host: o.host } : {}) };
        const created = (await PacerClient.fromOptions(o).request<TokenRecord & { token: string }>('POST', '/v1/tokens', { body })).body;
        if (o.json) return printJson(created);
        process.stderr.write(
          `created token ${created.id} (name ${created.name}, role ${created.role}${created.host ? `, host ${created.host}` : ''})\n` +
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
