import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VifGuardError } from '../errors.js';
import type { Runner } from '../runner.js';
import { DEMO6 } from './flows.js';

export interface DemoGuest {
  readonly name: string;
  readonly ns: string;
  readonly vif: string;
  readonly address: string;
  readonly address6: string;
  readonly mac: string;
  readonly hostile: boolean;
}

const SUBNET = '198.51.100';

/** A dom0 in network namespaces: xenbr0, guests on veth pairs named like vifs. Everything it makes, destroy() removes. */
export class DemoLab {
  readonly id = `${process.pid.toString(36)}${Date.now().toString(36).slice(-3)}`;
  readonly dom0 = `vgdemo-${this.id}-d0`;
  readonly dom0Ip = `${SUBNET}.1`;
  readonly dir = mkdtempSync(join(tmpdir(), 'vif-guard-demo-'));
  readonly guests: DemoGuest[] = [
    { name: 'web', ns: `vgdemo-${this.id}-web`, vif: 'vif1.0', address: `${SUBNET}.11`, address6: `${DEMO6}::11`, mac: '00:16:3e:00:00:11', hostile: false },
    { name: 'db', ns: `vgdemo-${this.id}-db`, vif: 'vif2.0', address: `${SUBNET}.12`, address6: `${DEMO6}::12`, mac: '00:16:3e:00:00:12', hostile: false },
    { name: 'evil', ns: `vgdemo-${this.id}-evil`, vif: 'vif3.0', address: `${SUBNET}.13`, address6: `${DEMO6}::13`, mac: '00:16:3e:00:00:13', hostile: true },
  ];
  private readonly made: string[] = [];

  constructor(private readonly runner: Runner) {}

  guest(name: string): DemoGuest {
    const guest = this.guests.find((g) => g.name === name);
    if (!guest) throw new Error(`no demo guest ${name}`);
    return guest;
  }

  async ip(...args: string[]): Promise<void> {
    const result = await this.runner.run('ip', args, { timeout: 10_000 });
    if (result.exitCode !== 0) throw new VifGuardError('KERNEL', `ip ${args.join(' ')} failed: ${result.stderr.trim()}`);
  }

  inNs(ns: string, args: string[], timeout = 15_000) {
    return this.runner.run('ip', ['netns', 'exec', ns, ...args], { timeout });
  }

  async build(): Promise<void> {
    await this.ip('netns', 'add', this.dom0);
    this.made.push(this.dom0);
    await this.ip('-n', this.dom0, 'link', 'set', 'lo', 'up');
    await this.ip('-n', this.dom0, 'link', 'add', 'xenbr0', 'address', '02:00:00:00:de:00', 'type', 'bridge');
    await this.ip('-n', this.dom0, 'addr', 'add', `${this.dom0Ip}/24`, 'dev', 'xenbr0');
    await this.ip('-n', this.dom0, 'link', 'set', 'xenbr0', 'up');
    for (const guest of this.guests) {
      await this.ip('netns', 'add', guest.ns);
      this.made.push(guest.ns);
      await this.ip('link', 'add', guest.vif, 'netns', this.dom0, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', guest.ns, 'address', guest.mac);
      await this.ip('-n', guest.ns, 'link', 'set', 'lo', 'up');
      await this.ip('-n', guest.ns, 'addr', 'add', `${guest.address}/24`, 'dev', 'eth0');
      await this.ip('-n', guest.ns, 'addr', 'add', `${guest.address6}/64`, 'dev', 'eth0', 'nodad');
      await this.ip('-n', guest.ns, 'link', 'set', 'eth0', 'up');
      await this.ip('-n', this.dom0, 'link', 'set', guest.vif, 'master', 'xenbr0', 'up');
    }
    // The hostile guest also takes an unused address and its neighbour's, as a customer could.
    const evil = this.guest('evil');
    await this.ip('-n', evil.ns, 'addr', 'add', `${SUBNET}.66/32`, 'dev', 'eth0');
    await this.ip('-n', evil.ns, 'addr', 'add', `${this.guest('web').address}/32`, 'dev', 'eth0');
    await this.ip('-n', evil.ns, 'addr', 'add', `${this.guest('db').address6}/128`, 'dev', 'eth0', 'nodad');
    writeFileSync(join(this.dir, 'vif-guard.conf'), '[general]\nbackend = auto\n');
  }

  /** The demo's own config and lock: the host's are never used or touched. */
  get env(): string[] {
    return [`VIF_GUARD_CONFIG=${join(this.dir, 'vif-guard.conf')}`, `VIF_GUARD_LOCK=${join(this.dir, 'lock')}`];
  }

  async destroy(): Promise<void> {
    for (const ns of this.made.reverse()) await this.runner.run('ip', ['netns', 'del', ns]).catch(() => undefined);
    this.made.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The installed hook next to this bundle, or the compiled one in a source tree. */
export function hookPath(name: 'vif-up' | 'vif-down'): string {
  const candidates = [new URL(`./${name}.cjs`, import.meta.url), new URL(`../../hooks/${name}.js`, import.meta.url)];
  for (const candidate of candidates) {
    const path = fileURLToPath(candidate);
    if (existsSync(path)) return path;
  }
  throw new VifGuardError('MISSING_TOOL', `cannot find the ${name} hook next to ${fileURLToPath(import.meta.url)}`);
}
