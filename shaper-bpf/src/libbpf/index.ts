// Concern: the public surface of the libbpf binding. Everything else in this directory is
// an implementation detail; import from here.
export { BpfError, errnoName } from './errors.js';
export { BpfObject, type OpenOptions } from './object.js';
export { BpfMap, MAP_TYPE_NAMES, UpdateFlags, type MapBtf } from './map.js';
export {
  BpfProgram,
  readSkbContext,
  SKB_CONTEXT_SIZE,
  skbContext,
  type SkbContextIn,
  type SkbContextOut,
  type TestRunOptions,
  type TestRunResult,
} from './program.js';
export {
  interfaceIndex,
  tcAttach,
  tcDetach,
  tcHookCreate,
  tcHookDestroy,
  tcQuery,
  type TcAttachment,
  type TcAttachOptions,
  type TcDirection,
  type TcFilterRef,
  type TcTarget,
} from './tc.js';
export { inNetns } from './netns.js';
export { attachCgroup, CgroupAttachment, detachPinnedCgroupLink, type CgroupAttachMode, type CgroupAttachOptions } from './cgroup.js';
export { assertStructLayouts, EXPECTED_SIZES, logMark, logSince, numPossibleCpus } from './native.js';
