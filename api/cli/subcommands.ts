/**
 * pacer's subcommands: a summary for `pacer --help` and a loader that imports the module only when
 * the subcommand runs. The summary is the loaded command's own description (a test checks it).
 */
import type { Command } from 'commander';

export interface Subcommand {
  summary: string;
  load: () => Promise<Command>;
}

export const SUBCOMMANDS: Record<string, Subcommand> = {
  demo: {
    summary: 'show pacer at work on this host: a lab of namespaces, the API, the agent, iperf3 traffic and a live table of budgets becoming rates (root)',
    load: async () => (await import('../../demo/command.js')).demoCommand(),
  },
  api: {
    summary: 'serve the budgets API (REST + watch stream) on an SQLite file',
    load: async () => (await import('./serve-command.js')).apiCommand(),
  },
  class: {
    summary: 'traffic classes: list, show, create/change (tc units), delete, watch',
    load: async () => (await import('./class-commands.js')).classCommand(),
  },
  host: {
    summary: 'hosts running the pacer agent',
    load: async () => (await import('./host-commands.js')).hostCommand(),
  },
  token: {
    summary: 'API tokens (admin only)',
    load: async () => (await import('./token-commands.js')).tokenCommand(),
  },
  audit: {
    summary: 'who changed what and when, newest first, with the fields each change changed',
    load: async () => (await import('./audit-command.js')).auditCommand(),
  },
  backup: {
    summary: "copy the API's store while it serves (admin token), with its token key when run on the API's host",
    load: async () => (await import('./backup-command.js')).backupCommand(),
  },
  dp: {
    summary: "read this host's data plane from its pinned BPF maps (root; no API needed)",
    load: async () => (await import('./dp-commands.js')).dpCommand(),
  },
  sim: {
    summary: 'simulate EDT pacing, fq and datacenter TCP for a scenario (see sim/examples/)',
    load: async () => (await import('../../sim/cli.js')).simCommand(),
  },
  doctor: {
    summary: 'check whether this host can run the agent and shape (not just police), with the fix for each missing piece',
    load: async () => (await import('../../controller/doctor/command.js')).doctorCommand(),
  },
  agent: {
    summary: "run the per-host agent: follow the API's classes for this host and enforce them on each interface",
    load: async () => (await import('../../controller/cli.js')).agentCommand(),
  },
  completion: {
    summary: 'print a shell completion script: source <(pacer completion bash), or pacer completion zsh > "${fpath[1]}/_pacer"',
    load: async () => (await import('./completion-command.js')).completionCommand(),
  },
};

/**
 * The subcommand a command line runs: its first word that is not an option (`pacer help X` asks
 * for X's help, so X is loaded). Undefined for `pacer`, `pacer --help`, `pacer --version`.
 */
export function subcommandNamed(args: readonly string[]): string | undefined {
  const words = args.filter((a) => !a.startsWith('-'));
  return words[0] === 'help' ? words[1] : words[0];
}
