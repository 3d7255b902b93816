/** `pacer host ls|get`: the hosts whose agents registered, what they enforce, and who is stale. */
import { Command } from 'commander';
import type { HostJson } from '../contract/host.js';
import { PacerClient, seg, withGlobalOptions, type GlobalOptions } from './client.js';
import { NONE, age, keyValues, labelsText, out, printJson, run, table } from './output.js';

/** Class errors plus the agent's last error: anything a human should look at. */
function errorCount(h: HostJson): number {
  return (h.status?.classErrors.length ?? 0) + (h.status?.lastError ? 1 : 0);
}

export function hostTable(items: HostJson[], now = Date.now()): string {
  return table(
    ['NAME', 'LABELS', 'MODE', 'APPLIED-REVISION', 'LAST-SEEN', 'STALE', 'ERRORS'],
    items.map((h) => [
      h.name,
      labelsText(h.labels),
      h.status?.mode ?? NONE,
      h.status?.appliedRevision ?? NONE,
      age(h.lastSeenAt, now),
      h.stale ? 'yes' : 'no',
      errorCount(h),
    ]),
  );
}

export function hostDetails(h: HostJson, now = Date.now()): string {
  const s = h.status;
  const lines = [
    keyValues([
      ['Name', h.name],
      ['Labels', labelsText(h.labels)],
      ['Agent version', h.agentVersion ?? NONE],
      ['Registered', h.registeredAt],
      ['Last seen', `${h.lastSeenAt} (${age(h.lastSeenAt, now)} ago)`],
      ['Stale', h.stale ? 'yes (no heartbeat for longer than the API allows)' : 'no'],
      // modeDetail usually starts with the mode ("policing (fq unavailable)"): print it once.
      ['Mode', s ? (s.modeDetail?.startsWith(s.mode) ? s.modeDetail : `${s.mode}${s.modeDetail ? ` (${s.modeDetail})` : ''}`) : `${NONE} (no heartbeat yet)`],
      ['Applied revision', s?.appliedRevision ?? NONE],
      ['Last error', s?.lastError ?? NONE],
    ]),
  ];
  // Lapses of pacer's tc program (docs/agent.md, "Lapses"): shown once there is one to show.
  const lapsed = s?.attachments?.filter((a) => a.state !== 'attached' || a.lapses > 0) ?? [];
  if (lapsed.length > 0) {
    lines.push('', 'Interface lapses:', table(['IFACE', 'STATE', 'LAPSES', 'LAST-LAPSE-AT', 'LAST-LAPSE'], lapsed.map((a) => [a.iface, a.state, a.lapses, a.lastLapseAt ?? NONE, a.lastLapse ?? NONE])));
  }
  if (s && s.classErrors.length > 0) {
    lines.push('', 'Class errors:', table(['CLASS', 'ERROR'], s.classErrors.map((e) => [e.class, e.error])));
  }
  return lines.join('\n');
}

function lsCommand(): Command {
  return withGlobalOptions(new Command('ls'))
    .alias('list')
    .description('list registered hosts')
    .action(
      run(async (o: GlobalOptions) => {
        const list = (await PacerClient.fromOptions(o).get<{ items: HostJson[] }>('/v1/hosts')).body;
        if (o.json) return printJson(list);
        if (list.items.length === 0) {
          process.stderr.write('no hosts registered\n');
          return;
        }
        out(hostTable(list.items));
      }),
    );
}

function getCommand(): Command {
  return withGlobalOptions(new Command('get'))
    .description('show one host: labels, mode, applied revision, errors')
    .argument('<name>', 'host name')
    .action(
      run(async (name: string, o: GlobalOptions) => {
        const h = (await PacerClient.fromOptions(o).get<HostJson>(`/v1/hosts/${seg(name)}`)).body;
        if (o.json) return printJson(h);
        out(hostDetails(h));
      }),
    );
}

export function hostCommand(): Command {
  return new Command('host').description('hosts running the pacer agent').addCommand(lsCommand()).addCommand(getCommand());
}
