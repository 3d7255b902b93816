/**
 * Every change to a class bumps one global, strictly increasing revision. The revision is the
 * SSE event id of the watch stream and the ETag of a class (the revision that last wrote it).
 */
export type Revision = number;

export function etagOf(revision: Revision): string {
  return `"${revision}"`;
}

/** Parses an If-Match header: a list of strong ETags or `*`. Weak tags never match (RFC 9110 13.1.1). */
export function parseIfMatch(header: string): { any: true } | { any: false; revisions: Revision[] } {
  const trimmed = header.trim();
  if (trimmed === '*') return { any: true };
  const revisions: Revision[] = [];
  for (const part of trimmed.split(',')) {
    const m = /^"(\d{1,15})"$/.exec(part.trim());
    if (m) revisions.push(Number(m[1]));
  }
  return { any: false, revisions };
}
