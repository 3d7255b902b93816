/**
 * What test/vm/guest-bpf.ts (inside the VM) reports and test/vm/kernel-6.1.spec.ts (on the host)
 * reads: kept apart from guest-bpf.ts, whose import would run it.
 */

/** What one step found; `error`/`verifierLog` only when it failed. */
export interface StepResult {
  ok: boolean;
  ms: number;
  error?: string;
  /** The verifier's log when the kernel rejected a program (BpfError.detail). */
  verifierLog?: string;
  [key: string]: unknown;
}

export interface GuestReport {
  kernel: string;
  jitEnabled: string;
  steps: Record<string, StepResult>;
}

/** Packets of the test run: 1500 B at 100 Mbit/s is 120 µs of wire time each. */
export const TEST_RUN = { rateBps: 100_000_000, wireLen: 1500, packets: 3, t0: 1_000_000_000_000_000, gapNs: 120_000 } as const;
