// Concern: turning libbpf/kernel failures into errors a human can act on. libbpf 1.x
// low-level calls return -errno; calls returning pointers return NULL and set errno.
// BpfError records what was attempted, on what, and the errno by number, text and name.
import { constants } from 'node:os';
import { lastErrno, libbpfStrerror } from './native.js';

// Kernel-internal codes that leak to user space and that Node's table does not know.
// 524 ENOTSUPP is what the bpf() syscall returns for e.g. batch ops on a map type without them.
const EXTRA_NAMES: Record<number, string> = { 524: 'ENOTSUPP' };
const EXTRA_TEXT: Record<number, string> = { 524: 'Operation not supported by this map/program type' };

const NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  // Several names share a number (EAGAIN/EWOULDBLOCK, ENOTSUP/EOPNOTSUPP); keep the first.
  if (!NAMES.has(value)) NAMES.set(value, name);
}

/** Symbolic name of a (positive) errno, e.g. 2 → "ENOENT", 4003 → "LIBBPF_ERRNO_4003". */
export function errnoName(errno: number): string {
  return EXTRA_NAMES[errno] ?? NAMES.get(errno) ?? (errno >= 4000 ? `LIBBPF_ERRNO_${errno}` : `E${errno}`);
}

export function errnoText(errno: number): string {
  return EXTRA_TEXT[errno] ?? libbpfStrerror(errno);
}

export interface BpfErrorInit {
  /** What was attempted, e.g. `attach tc egress program "pacer_egress"`. */
  operation: string;
  /** What it was attempted on, e.g. `veth-a (ifindex 7)` or `map "classes"`. */
  target: string;
  /** Positive errno. */
  errno: number;
  /** Extra context appended on following lines (its last 8 KiB in the message), e.g. the verifier log. */
  detail?: string;
}

export class BpfError extends Error {
  readonly operation: string;
  readonly target: string;
  readonly errno: number;
  /** Symbolic errno, e.g. "ENODEV". */
  readonly code: string;
  readonly detail: string | undefined;

  constructor(init: BpfErrorInit) {
    const code = errnoName(init.errno);
    const head = `${init.operation} on ${init.target}: ${errnoText(init.errno)} (${code})`;
    super(init.detail ? `${head}\n${tail(init.detail.trimEnd())}` : head);
    this.name = 'BpfError';
    this.operation = init.operation;
    this.target = init.target;
    this.errno = init.errno;
    this.code = code;
    this.detail = init.detail || undefined;
  }
}

// A verifier log can run to megabytes; the message keeps its end, where the verifier says what
// it rejected. The whole text stays in BpfError.detail.
const MESSAGE_DETAIL_MAX = 8 * 1024;
function tail(detail: string): string {
  if (detail.length <= MESSAGE_DETAIL_MAX) return detail;
  const cut = detail.indexOf('\n', detail.length - MESSAGE_DETAIL_MAX);
  const kept = detail.slice(cut < 0 ? detail.length - MESSAGE_DETAIL_MAX : cut + 1);
  return `[… ${detail.length - kept.length} earlier characters in .detail]\n${kept}`;
}

/**
 * Checks a libbpf 1.x int return: negative means -errno. Returns the value when >= 0.
 * `detail` is only computed on failure.
 */
export function check(ret: number, operation: string, target: string, detail?: () => string): number {
  if (ret >= 0) return ret;
  throw new BpfError({ operation, target, errno: -ret, detail: detail?.() });
}

/** Checks a pointer return: NULL means failure with the reason in errno. */
export function checkPtr<T extends bigint>(ptr: T | null, operation: string, target: string, detail?: () => string): T {
  if (ptr !== null && ptr !== 0n) return ptr;
  // Read errno first: building `detail` may make further native calls.
  const errno = lastErrno() || constants.errno.EINVAL;
  throw new BpfError({ operation, target, errno, detail: detail?.() });
}
