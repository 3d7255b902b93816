#!/usr/bin/env node
/**
 * The `pacer` command: the composition root. Each part registers its own subcommands.
 */
import { Command } from 'commander';
import { apiCommand } from './serve-command.js';
import { classCommand } from './class-commands.js';
import { hostCommand } from './host-commands.js';
import { tokenCommand } from './token-commands.js';
import { dpCommand } from './dp-commands.js';
import { simCommand } from '../../sim/cli.js';
import { agentCommand } from '../../controller/cli.js';

const program = new Command('pacer')
  .description('EDT pacing traffic shaper: budgets API, host agent, simulator')
  .version('0.1.0')
  .showHelpAfterError();
program.addCommand(apiCommand());
program.addCommand(classCommand());
program.addCommand(hostCommand());
program.addCommand(tokenCommand());
program.addCommand(dpCommand());
program.addCommand(simCommand());
program.addCommand(agentCommand());

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`pacer: ${err.message}\n`);
  process.exit(1);
});
