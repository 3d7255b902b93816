/**
 * Hosts: an agent registers its host with labels, then heartbeats what it enforces.
 */
import { z } from 'zod';
import { labelsSchema } from './class.js';
import { escapeControl, plainText } from './text.js';

const HOST_NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
export const hostNameSchema = z.string().regex(HOST_NAME_RE, 'a host name is a DNS name: letters, digits, "." and "-", at most 253 characters');

/** `policing` means fq is missing: pacer drops what exceeds a budget instead of delaying it. */
export const HOST_MODES = ['shaping', 'policing', 'error'] as const;
export type HostMode = (typeof HOST_MODES)[number];

/** PUT /v1/hosts/{name}. agentVersion null (as GET returns it for an agent that sent none) is none. */
export const hostRegistrationSchema = z.strictObject({
  labels: labelsSchema.prefault({}),
  agentVersion: plainText('agentVersion', 64).nullable().optional(),
});

/**
 * What GET /v1/hosts/{name} returns beside the registration: the agent's reports and the API's
 * bookkeeping. A PUT body may carry them, so a GET body can be edited and sent back; they are
 * ignored (heartbeats change them all the time, and only the agent reports status).
 */
export const HOST_REPORTED_FIELDS = ['registeredAt', 'lastSeenAt', 'stale', 'status'] as const;

/** A PUT body's registration, without the reported fields and without `name` (returned apart, for the service to compare with the URL). */
export function splitHostBody(body: unknown): { registration: unknown; name: unknown } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { registration: body, name: undefined };
  const registration: Record<string, unknown> = Object.create(null);
  let name: unknown;
  for (const [k, v] of Object.entries(body)) {
    if (k === 'name') name = v;
    else if (!(HOST_REPORTED_FIELDS as readonly string[]).includes(k)) registration[k] = v;
  }
  return { registration, name };
}

export const ATTACHMENT_STATES = ['attached', 'repaired', 'error'] as const;

/** One interface's tc program attachment, and its lapses since the agent started. */
export const hostAttachmentSchema = z.strictObject({
  iface: plainText('iface', 64).min(1),
  state: z.enum(ATTACHMENT_STATES),
  /** Times the agent found its program not attached (each lapse once, however long it lasted). */
  lapses: z.number().int().min(0),
  /** When the last lapse was found, and what had happened (or, in `error`, why it cannot be re-attached). */
  lastLapseAt: z.string().datetime().optional(),
  lastLapse: plainText('lastLapse', 1024).optional(),
  /** When the program was last re-attached. */
  repairedAt: z.string().datetime().optional(),
});
export type HostAttachment = z.output<typeof hostAttachmentSchema>;

/** PUT /v1/hosts/{name}/status: the agent's heartbeat. */
export const hostStatusSchema = z.strictObject({
  appliedRevision: z.number().int().min(0),
  mode: z.enum(HOST_MODES),
  /** Why the mode is what it is, e.g. "policing (fq unavailable)". */
  modeDetail: plainText('modeDetail', 1024).optional(),
  classErrors: z
    .array(z.strictObject({ class: plainText('class', 63), error: plainText('error', 1024) }))
    .max(10_000)
    .default([]),
  lastError: plainText('lastError', 4096).nullable().default(null),
  /**
   * Per interface: is pacer's tc program attached? `error` while it is not and cannot be
   * re-attached (the host's mode is then `error`, lastError says why); `repaired` for a while after
   * the agent re-attached it (docs/agent.md, "Lapses"). Absent from agents before this field.
   */
  attachments: z.array(hostAttachmentSchema).max(1024).optional(),
});
export type HostStatus = z.output<typeof hostStatusSchema>;

/**
 * The status with every control character in its text written as \xHH: what an agent sends, since
 * the API refuses control characters and error messages from the kernel or tools may hold
 * newlines or tabs.
 */
export function escapeStatusText(s: HostStatus): HostStatus {
  const text = <T extends string | null | undefined>(t: T): T => (typeof t === 'string' ? (escapeControl(t) as T) : t);
  return {
    ...s,
    modeDetail: text(s.modeDetail),
    lastError: text(s.lastError),
    classErrors: s.classErrors.map((e) => ({ class: text(e.class), error: text(e.error) })),
    ...(s.attachments ? { attachments: s.attachments.map((a) => ({ ...a, iface: text(a.iface), lastLapse: text(a.lastLapse) })) } : {}),
  };
}

export interface HostRecord {
  name: string;
  labels: Record<string, string>;
  agentVersion: string | null;
  registeredAt: string;
  lastSeenAt: string;
  status: HostStatus | null;
}

export interface HostJson extends HostRecord {
  /** No heartbeat for longer than the API's stale-after setting. */
  stale: boolean;
}
