/**
 * `pacer doctor [--api URL] [--token-file F] [--pin-base DIR] [--json]`: the checklist of
 * controller/doctor/checks.ts as a table (or JSON), each missing piece with its fix. Exit 0 only
 * when the agent can shape here (verdict `ready to shape`) and nothing checked failed, the API
 * included when --api is given; 1 otherwise.
 */
import { Command, Option } from 'commander';
import { resolveToken } from '../../api/cli/client.js';
import { out, printJson, run, table } from '../../api/cli/output.js';
import { PIN_BASE } from '../../shaper-bpf/src/interface.js';
import { runDoctor, type DoctorReport } from './checks.js';

const MARK = { ok: 'ok', warn: 'WARN', fail: 'FAIL' } as const;

function text(r: DoctorReport): string {
  const rows = r.checks.map((c) => [MARK[c.status], c.name, c.found]);
  const fixes = r.checks.filter((c) => c.fix).map((c) => `- ${c.name}: ${c.fix}`);
  return [`pacer doctor on Linux ${r.kernel}: ${r.verdict}`, r.summary, '', table(['', 'CHECK', 'FOUND'], rows), ...(fixes.length ? ['', 'To fix:', ...fixes] : [])].join('\n');
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('check whether this host can run the agent and shape (not just police), with the fix for each missing piece')
    .addOption(new Option('--api <url>', 'also check this API: reachable, and the token valid').env('PACER_API'))
    .option('--token-file <file>', 'read the API token from this file instead of $PACER_TOKEN')
    .option('--pin-base <dir>', 'where the agent pins its maps', PIN_BASE)
    .option('--json', 'print the report as JSON')
    .action(
      run(async (o: { api?: string; tokenFile?: string; pinBase: string; json?: boolean }) => {
        let token: string | undefined;
        if (o.api) {
          try {
            token = resolveToken(o.tokenFile);
          } catch {
            token = undefined; // the API line says a token is missing
          }
        }
        const report = await runDoctor({ api: o.api, token, pinBase: o.pinBase });
        if (o.json) printJson(report);
        else out(text(report));
        if (report.verdict !== 'ready to shape' || report.checks.some((c) => c.status === 'fail')) process.exitCode = 1;
      }),
    );
}
