/** `pacer audit`: who changed what and when, with what each change did to the fields (GET /v1/audit). */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Change } from '../contract/change.js';
import { PacerClient, withGlobalOptions, type GlobalOptions } from './client.js';
import { fieldChanges } from './field-changes.js';
import { out, printJson, run, table } from './output.js';

interface AuditOptions extends GlobalOptions {
  name?: string;
  kind?: 'class' | 'token';
  limit: number;
}

function limit(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 1000) throw new InvalidArgumentError('an integer from 1 to 1000');
  return Number(value);
}

/** What a change did, in a line: the fields it changed, or the whole for a creation or a deletion. */
export function changeText(c: Change): string {
  if (c.action === 'created' || c.action === 'deleted') return fieldChanges(c.action === 'created' ? {} : c.before, c.action === 'created' ? c.after : {}).join('; ');
  return fieldChanges(c.before, c.after).join('; ') || '(no field changed)';
}

export function auditCommand(): Command {
  return withGlobalOptions(new Command('audit'))
    .description('who changed what and when, newest first, with the fields each change changed')
    .option('--name <name>', 'only this class (or token id)')
    .addOption(new Option('--kind <kind>', 'only classes or only tokens').choices(['class', 'token']))
    .option('--limit <n>', 'at most this many changes (1-1000)', limit, 50)
    .action(
      run(async (o: AuditOptions) => {
        const query = new URLSearchParams({ limit: String(o.limit), ...(o.name ? { name: o.name } : {}), ...(o.kind ? { kind: o.kind } : {}) });
        const { items } = (await PacerClient.fromOptions(o).get<{ items: Change[] }>(`/v1/audit?${query}`)).body;
        if (o.json) return printJson(items);
        if (items.length === 0) return void process.stderr.write('no changes found\n');
        out(table(['REVISION', 'AT', 'BY', 'ACTION', 'KIND', 'NAME', 'CHANGES'], items.map((c) => [c.revision, c.at, c.actor, c.action, c.kind, c.name, changeText(c)])));
      }),
    );
}
