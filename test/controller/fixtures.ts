/** Class records for controller tests: defaults as the API fills them. */
import type { ClassRecord, ClassSpec } from '../../api/contract/class.js';

export function record(name: string, id: number, spec: Partial<ClassSpec> = {}): ClassRecord {
  return {
    name,
    id,
    description: '',
    rate: 10_000_000,
    ceil: null,
    burst: { bytes: 0 },
    horizon: 2_000_000_000,
    parent: null,
    weight: 1,
    match: { marks: [], cgroups: [], dst: [] },
    hosts: { matchLabels: {} },
    tcp: null,
    ecn: null,
    revision: id,
    createdRevision: id,
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:00:00.000Z',
    ...spec,
  };
}
