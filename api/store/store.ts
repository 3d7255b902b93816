/**
 * The durable store behind the API. SQLite is the default (sqlite.ts); the interface is
 * asynchronous and speaks only domain types, so a PostgreSQL store can serve several replicas.
 *
 * Every method that resolves has committed durably: callers acknowledge a write only then.
 */
import type { ClassRecord, ClassSpec } from '../contract/class.js';
import type { ClassIndex } from '../contract/consistency.js';
import type { Change } from '../contract/change.js';
import type { HostRecord, HostStatus } from '../contract/host.js';
import type { Role, TokenRecord } from '../contract/token.js';

/**
 * Decides a class write inside the store's transaction, seeing the current class (if any) and an
 * index of every class. Returns the new spec, or null to delete. Throws a domain error to abort:
 * then nothing is written.
 */
export type ClassDecision = (current: ClassRecord | undefined, classes: ClassIndex) => ClassSpec | null;

export interface AuditQuery {
  /** Only changes with a revision below this (paging backwards). */
  before?: number;
  kind?: Change['kind'];
  name?: string;
  limit: number;
}

export interface NewToken {
  id: string;
  name: string;
  role: Role;
  host: string | null;
  /** SHA-256 of the secret. Neither it nor the secret is stored: a store keeps a keyed digest of it. */
  hash: Buffer;
  /** Seconds from its creation (the store's clock, as createdAt) until it expires; null: never. */
  ttlSeconds: number | null;
}

export interface Store {
  /** The latest revision; 0 for an empty store. */
  revision(): Promise<number>;
  /** Changes up to and including this revision have been compacted away. */
  compactedThrough(): Promise<number>;

  listClasses(): Promise<{ revision: number; classes: ClassRecord[] }>;
  getClass(name: string): Promise<ClassRecord | undefined>;
  /** Creates, replaces or deletes one class, as `decide` says, atomically. Resolves to the committed change. */
  writeClass(name: string, actor: string, decide: ClassDecision): Promise<{ change: Change; record: ClassRecord | undefined }>;

  /** Class changes after `since`, oldest first. */
  classChangesSince(since: number, limit: number): Promise<Change[]>;
  audit(query: AuditQuery): Promise<Change[]>;
  /** Called after each commit, in commit order. Returns an unsubscribe function. */
  onCommit(listener: (change: Change) => void): () => void;

  registerHost(name: string, labels: Record<string, string>, agentVersion: string | null): Promise<HostRecord>;
  /** Undefined when the host never registered. */
  setHostStatus(name: string, status: HostStatus): Promise<HostRecord | undefined>;
  listHosts(): Promise<HostRecord[]>;
  getHost(name: string): Promise<HostRecord | undefined>;
  deleteHost(name: string): Promise<boolean>;

  createToken(token: NewToken, actor: string): Promise<TokenRecord>;
  /** By the SHA-256 of the secret, as in NewToken; `hash` in the answer is that same digest. */
  findTokenByHash(hash: Buffer): Promise<(TokenRecord & { hash: Buffer }) | undefined>;
  listTokens(): Promise<TokenRecord[]>;
  /** Revokes unless `guard` throws (it sees the token and every active token). */
  revokeToken(id: string, actor: string, guard: (token: TokenRecord, active: TokenRecord[]) => void): Promise<TokenRecord | undefined>;

  /**
   * Undefined while writes can be committed; otherwise why not (the disk is full). While the
   * store is full, each call probes with a tiny write, so readiness returns with the space.
   */
  unwritable(): Promise<string | undefined>;

  /**
   * Writes a consistent copy of the whole store, as of one revision, to a new file `toFile`, while
   * writes go on; resolves with that revision once the copy is durable. The copy is in the store's
   * own format (for SQLite: a database file that `pacer api --db` opens). docs/operations.md, "Backups".
   */
  backup(toFile: string): Promise<{ revision: number }>;

  close(): Promise<void>;
}
