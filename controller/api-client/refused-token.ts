/**
 * What an agent should do about a token the API refused (401, 403): the fix, in words an operator
 * can act on. Retrying never helps, and an expired token is no exception: the agent reads its
 * token once, at start, so it needs a new token and a restart.
 */
import { ApiError } from './api-client.js';

/** The fix for a token the API refused (401, 403), or undefined for any other error. */
export function refusedTokenFix(err: unknown, host: string): string | undefined {
  if (!(err instanceof ApiError)) return undefined;
  const create = `pacer token create --role agent --host ${host} --name ${host}`;
  if (err.status === 401) {
    // The API says "this token (tok_…) expired at <ISO time>" (api/http/auth.ts).
    const expiredAt = /expired at (\S+?):? /.exec(err.message)?.[1];
    if (expiredAt !== undefined) {
      return `the token expired at ${expiredAt}: create a new token (an admin runs \`${create}\`, with --ttl if it should expire too) and restart the agent with it in PACER_TOKEN or --token-file`;
    }
    return 'the token is not valid (unknown, revoked or mistyped): give the agent a valid agent token in PACER_TOKEN or --token-file (an admin makes one with `' + create + '`)';
  }
  if (err.status !== 403) return undefined;
  const bound = /this agent token is for host "([^"]+)"/.exec(err.message)?.[1];
  return bound
    ? `the token is bound to host "${bound}", and this agent runs as "${host}": pass --host ${bound}, or use a token made for "${host}" (pacer token create --role agent --host ${host} --name ${host})`
    : `the token may not register a host: use an agent token for "${host}" (${create})`;
}
