import assert from 'node:assert/strict';
import { SUBCOMMANDS, subcommandNamed } from '../../api/cli/subcommands.js';
import { modulesLoadedBy } from '../support/module-trace.js';

/** Modules a command that only talks to the API (or prints the version) must not load. */
const HEAVY = /\/node_modules\/(express|better-sqlite3|inversify|koffi|vega|vega-lite|rxjs|pino|prom-client|zod)\/|\/dist\/(controller|sim|shaper-bpf|api\/store|api\/routes)\//;

describe('pacer CLI: each subcommand is loaded only when it runs', function () {
  this.timeout(120_000);

  it('each summary is the loaded command\'s own name and description', async () => {
    for (const [name, sub] of Object.entries(SUBCOMMANDS)) {
      const cmd = await sub.load();
      assert.equal(cmd.name(), name);
      assert.equal(sub.summary, cmd.description(), `${name}: the summary in subcommands.ts differs from the command's description`);
    }
  });

  it('finds the subcommand a command line names', () => {
    assert.equal(subcommandNamed([]), undefined);
    assert.equal(subcommandNamed(['--version']), undefined);
    assert.equal(subcommandNamed(['--help']), undefined);
    assert.equal(subcommandNamed(['class', 'ls', '--json']), 'class');
    assert.equal(subcommandNamed(['help', 'agent']), 'agent');
    assert.equal(subcommandNamed(['help']), undefined);
  });

  // `completion class-names` runs at a TAB (the completion scripts call it): it must start as fast.
  for (const args of [['--version'], ['--help'], ['class', 'ls', '--api', 'http://127.0.0.1:9'], ['completion', 'class-names', '--api', 'http://127.0.0.1:9']]) {
    it(`\`pacer ${args.join(' ')}\` loads neither the API server, the agent, the simulator, the data plane nor their libraries`, () => {
      const { urls } = modulesLoadedBy(args);
      assert.ok(urls.some((u) => u.endsWith('/dist/api/cli/pacer.js')), 'the trace saw the CLI itself');
      assert.deepEqual(urls.filter((u) => HEAVY.test(u)), []);
    });
  }

  // Issue 17: the agent's and the API's dependency sets stay minimal (docs/dependencies.md).
  const foreign: Array<{ args: string[]; packages: string[]; ours: string[] }> = [
    { args: ['agent', '--help'], packages: ['vega', 'vega-lite', 'express', 'better-sqlite3', 'swagger-ui-dist'], ours: ['sim', 'api/store', 'api/routes'] },
    { args: ['api', '--help'], packages: ['vega', 'vega-lite', 'koffi', 'inversify', 'rxjs', 'influx'], ours: ['sim', 'controller', 'shaper-bpf'] },
    { args: ['sim', '--help'], packages: ['vega', 'vega-lite', 'koffi', 'express', 'better-sqlite3'], ours: ['controller', 'api/store'] },
  ];
  for (const { args, packages, ours } of foreign) {
    it(`\`pacer ${args.join(' ')}\` loads none of ${[...packages, ...ours.map((o) => `dist/${o}`)].join(', ')}`, () => {
      const not = new RegExp(`/node_modules/(${packages.join('|')})/|/dist/(${ours.join('|')})/`);
      const { urls } = modulesLoadedBy(args);
      assert.deepEqual(urls.filter((u) => not.test(u)), []);
    });
  }

  it('the control: `pacer agent --help` does load the agent (the trace sees what is loaded)', () => {
    const { urls, code } = modulesLoadedBy(['agent', '--help']);
    assert.equal(code, 0);
    assert.ok(urls.some((u) => /\/dist\/controller\//.test(u)), 'the agent module was loaded');
  });
});
