/**
 * Control characters in text that reaches a terminal. Apart from api/contract/text.ts (which
 * refuses them at the edge with zod) so that the CLI can escape without loading zod: `pacer class
 * ls` must answer at once (issue 11).
 */

/** C0, DEL and C1 control characters. */
export const CONTROL_ALL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Writes each control character as \xHH, so printing the result cannot drive a terminal. */
export function escapeControl(s: string): string {
  return s.replace(CONTROL_ALL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
