/**
 * A child process for the concurrency test: opens a pinned program, waits for "go" on stdin so
 * that every worker starts together, then runs it `repeat` times through BPF_PROG_TEST_RUN and
 * prints the result. Usage: node test-run-worker.js PIN_PATH REPEAT WIRE_LEN
 */
import { createInterface } from 'node:readline';
import { BpfProgram, skbContext } from '../../shaper-bpf/src/libbpf/index.js';
import { frame } from './packets.js';

const [pinPath, repeat, wireLen] = process.argv.slice(2);
const program = BpfProgram.openPinned(pinPath!);
const data = frame('192.0.2.1', { length: Number(wireLen) });
const ctxIn = skbContext({ mark: 1, wireLen: Number(wireLen) });
process.stdout.write('ready\n');
createInterface({ input: process.stdin }).once('line', () => {
  const r = program.testRun({ data, ctxIn, ctxOutSize: 192, repeat: Number(repeat) });
  process.stdout.write(JSON.stringify({ retval: r.retval, durationNs: r.durationNs }) + '\n');
  process.exit(0);
});
