/**
 * A restarted agent for the adoption test: loads EgressObject on an existing pinRoot (libbpf
 * reuses the maps pinned there) and, for every line on stdin, prints one class's config, state
 * and stats as JSON (found through class_slot, as a restarted agent finds them). Exits when stdin
 * closes. Usage: node traffic-adopt-worker.js PIN_ROOT CLASS_ID
 */
import { createInterface } from 'node:readline';
import { EgressObject } from '../../shaper-bpf/src/egress.js';

const [pinRoot, classId] = process.argv.slice(2);
const id = Number(classId);
const eg = EgressObject.load({ pinRoot: pinRoot! });
const report = () => {
  const slot = eg.slots.get(id)!;
  process.stdout.write(JSON.stringify({ programId: eg.program.id, config: eg.config.get(slot), state: eg.state.get(slot), stats: eg.stats.get(slot) }) + '\n');
};
report();
createInterface({ input: process.stdin })
  .on('line', report)
  .on('close', () => {
    eg.close();
    process.exit(0);
  });
