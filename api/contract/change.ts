/**
 * One committed change: an entry of the audit log and, for classes, an event of the watch stream.
 */
import type { ClassJson } from './class.js';
import type { Revision } from './revision.js';

export type ChangeKind = 'class' | 'token';
export type ChangeAction = 'created' | 'updated' | 'deleted' | 'revoked';

export interface Change {
  revision: Revision;
  at: string;
  /** Name of the token that made the change. */
  actor: string;
  kind: ChangeKind;
  action: ChangeAction;
  /** Class name or token id. */
  name: string;
  before: unknown;
  after: unknown;
}

/** The data of an SSE `class` event on GET /v1/watch. */
export interface ClassEvent {
  revision: Revision;
  action: Exclude<ChangeAction, 'revoked'>;
  name: string;
  /** The class after the change; null when deleted. */
  class: ClassJson | null;
}
