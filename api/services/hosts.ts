/** Hosts: agents register and heartbeat; readers see who is stale. */
import type { HostJson, HostRecord } from '../contract/host.js';
import { hostRegistrationSchema, hostStatusSchema, splitHostBody } from '../contract/host.js';
import { Forbidden, InvalidInput, NotFound } from '../errors.js';
import type { Principal } from '../http/auth.js';
import { parse } from '../http/validate.js';
import type { Store } from '../store/store.js';

export class HostService {
  constructor(
    private readonly store: Store,
    private readonly staleAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async register(name: string, body: unknown, who: Principal): Promise<HostJson> {
    mayWrite(name, who);
    const { registration, name: sent } = splitHostBody(body);
    if (sent !== undefined && sent !== name) {
      throw new InvalidInput(`read-only fields differ from host "${name}": name (sent ${JSON.stringify(sent)}, is "${name}"); remove it or send the name in the URL (a host cannot be renamed)`, [
        { path: '/name', message: 'must equal the name in the URL' },
      ]);
    }
    const input = parse(hostRegistrationSchema, registration);
    return this.withStale(await this.store.registerHost(name, input.labels, input.agentVersion ?? null));
  }

  async heartbeat(name: string, body: unknown, who: Principal): Promise<HostJson> {
    mayWrite(name, who);
    const status = parse(hostStatusSchema, body);
    const host = await this.store.setHostStatus(name, status);
    if (!host) throw new NotFound(`host "${name}" is not registered; PUT /v1/hosts/${name} first`);
    return this.withStale(host);
  }

  async list(): Promise<HostJson[]> {
    return (await this.store.listHosts()).map((h) => this.withStale(h));
  }

  async get(name: string, who: Principal): Promise<HostJson> {
    if (who.role === 'agent') mayWrite(name, who);
    const host = await this.store.getHost(name);
    if (!host) throw new NotFound(`host "${name}" is not registered`);
    return this.withStale(host);
  }

  async remove(name: string): Promise<void> {
    if (!(await this.store.deleteHost(name))) throw new NotFound(`host "${name}" is not registered`);
  }

  private withStale(h: HostRecord): HostJson {
    return { ...h, stale: this.now() - Date.parse(h.lastSeenAt) > this.staleAfterMs };
  }
}

/** Agents may write only the host their token was made for; admins may write any. */
function mayWrite(name: string, who: Principal): void {
  if (who.role === 'admin') return;
  if (who.role === 'agent' && who.host === name) return;
  throw new Forbidden(who.role === 'agent' ? `this agent token is for host "${who.host}", not "${name}"` : `role ${who.role} may not write hosts`);
}
