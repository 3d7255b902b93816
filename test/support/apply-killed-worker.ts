/**
 * A child process for the crash test of the destination caches: an agent's Datapath on pinned
 * maps that is SIGKILLed at the moment it would bump settings.generation, i.e. after it changed a
 * prefix trie and before the bump that tells the program's caches so.
 * Usage: node apply-killed-worker.js PIN_ROOT STATE (a ShaperState through serializeSnapshot).
 */
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { Datapath, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import { parseSnapshot } from '../../controller/reconciler/snapshot.js';

const [pinRoot, stateJson] = process.argv.slice(2);
const eg = EgressObject.load({ pinRoot: pinRoot! });
const generation = eg.settings.get(0)?.generation ?? 0;
const setMany = eg.settings.setMany.bind(eg.settings);
eg.settings.setMany = (entries) => {
  for (const [, s] of entries) if (s.generation !== generation) process.kill(process.pid, 'SIGKILL');
  return setMany(entries);
};
new Datapath(eg).apply(parseSnapshot<ShaperState>(stateJson!));
process.stdout.write('applied without a bump\n');
