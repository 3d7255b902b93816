/**
 * `pacer demo --vm`: the same demo inside the enforcement tier's VM (vm/runner.ts: Debian 12's own
 * kernel, which has sch_fq, under qemu, on this host's files), so the table shows real EDT pacing
 * on a host whose kernel has no fq. The guest runs `pacer demo` itself; its table comes out on the
 * VM's console, which is streamed here, and its JSON summary comes back through the results share.
 *
 * The guest cannot be sent a Ctrl-C, so a VM demo always has a duration (default DEFAULT_VM_S, plan.ts).
 */
import { prepareVm, runInVm, START_MARKER, VmRunError } from '../vm/runner.js';
import type { DemoOptions } from './command.js';
import { DemoError } from './demo-error.js';
import { DEFAULT_VM_S } from './plan.js';
import type { DemoSummary } from './summary.js';

/**
 * The guest's clock follows the instructions it runs (qemu's -icount, as the enforcement tier):
 * a busy host makes the demo take longer, never pace wrong. Booting and starting node there takes
 * ~2–4 guest minutes.
 */
const ICOUNT_SHIFT = 3;
const SETUP_GUEST_S = 400;

/** Console lines that are the VM's, not the demo's: /init's markers and kernel messages. */
const NOISE = /^(pacer-vm: |\[\s*\d+\.\d+\] )/;

export async function runDemoInVm(o: DemoOptions, progress: (line: string) => void): Promise<DemoSummary> {
  const durationS = o.durationS ?? DEFAULT_VM_S;
  progress('preparing the VM (Debian 12 kernel with fq; the first run downloads it with apt-get and builds an initramfs)…');
  const vm = prepareVm();
  progress(`booting ${vm.kernelVersion} under qemu (software emulation: a few minutes before the table shows)…`);
  let started = false;
  let partial = '';
  const onConsole = (text: string): void => {
    const lines = (partial + text).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!started) {
        if (line.includes(START_MARKER)) started = true;
        continue;
      }
      if (NOISE.test(line)) continue;
      // The guest's table (on stdout) and its progress lines (stderr, with --json) share the console.
      (o.json ? process.stderr : process.stdout).write(`${line}\n`);
    }
  };
  const args = ['demo', '--duration', `${durationS}s`, '--summary-file', '"$RESULTS/summary.json"', ...(o.json ? ['--json'] : [])];
  let results: Record<string, string>;
  try {
    const run = await runInVm({
      // The guest's loopback starts down; the demo's API and agent talk over it.
      script: `ip link set lo up && node dist/api/cli/pacer.js ${args.join(' ')}`,
      clock: { icountShift: ICOUNT_SHIFT },
      guestTimeoutS: SETUP_GUEST_S + 2 * durationS,
      stallTimeoutMs: 300_000,
      timeoutMs: 60 * 60_000,
      onConsole,
    }, vm);
    results = run.results;
  } catch (err) {
    if (err instanceof VmRunError) throw new DemoError(err.message);
    throw err;
  }
  const json = results['summary.json'];
  if (json === undefined) throw new DemoError('the demo in the VM ended without a summary (its output is above)');
  return JSON.parse(json) as DemoSummary;
}
