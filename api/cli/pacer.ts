#!/usr/bin/env node
/**
 * The `pacer` command: the composition root. Each part registers its own subcommands.
 *
 * A subcommand's module is imported only when that subcommand runs: the agent (inversify, koffi,
 * libbpf), the API server (express, better-sqlite3) and the simulator (vega) take seconds to load,
 * and `pacer class ls` or `pacer --version` must answer at once (issue 11; `npm run bench:cli`).
 * The other subcommands are listed by name and summary only, for `pacer --help`.
 */
import { Command } from 'commander';
import { SUBCOMMANDS, subcommandNamed } from './subcommands.js';

const program = new Command('pacer')
  .description('EDT pacing traffic shaper: budgets API, host agent, simulator')
  .version('0.1.0')
  .showHelpAfterError();

const wanted = subcommandNamed(process.argv.slice(2));
for (const [name, sub] of Object.entries(SUBCOMMANDS)) {
  if (name === wanted) program.addCommand(await sub.load());
  else program.command(name).description(sub.summary);
}

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`pacer: ${err.message}\n`);
  process.exit(1);
});
