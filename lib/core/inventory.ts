import type { Settings } from '../config/settings.js';
import type { GuestPort } from '../guest/model.js';
import { sameNetwork, type GuestAddress } from '../guest/validate.js';
import type { Runner } from '../runner.js';
import { findDomuConfigs, readDomuNetworks } from '../xen/domu-files.js';
import { buildXenInventory, listRunningVifs } from '../xen/inventory.js';
import { containerPorts, readContainer, runningContainers } from '../openvz/host.js';

/**
 * Addresses configured for two different guests: each guest is still held to its own list, but
 * either may then use the other's address, which is almost always a config mistake.
 */
export function overlaps(ports: readonly GuestPort[]): string[] {
  const warnings: string[] = [];
  const contains = (a: GuestAddress, b: GuestAddress) => a.family === b.family && a.prefix <= b.prefix && sameNetwork(a, b, a.prefix);
  for (let i = 0; i < ports.length; i += 1) {
    for (let j = i + 1; j < ports.length; j += 1) {
      const [p, q] = [ports[i], ports[j]];
      if (!p || !q || p.guest === q.guest) continue;
      for (const a of p.addresses) {
        const b = q.addresses.find((other) => contains(a, other) || contains(other, a));
        if (b) warnings.push(`${a.cidr} (${p.guest}, ${p.ifname}) overlaps ${b.cidr} (${q.guest}, ${q.ifname}): either guest may use those addresses`);
      }
    }
  }
  return warnings;
}

export interface Inventory {
  /** Every port that should exist now, validated. */
  readonly ports: GuestPort[];
  readonly warnings: string[];
  /** False when this host has no hypervisor toolstack vif-guard can read (then nothing is known to be running). */
  readonly hypervisor: boolean;
}

/**
 * What sync protects: running Xen domains (xenstore) with their domU configs, and running OpenVZ
 * containers' veths (vzlist, CTID.conf, containers.conf). Throws, changing nothing, on any bad value.
 */
export async function collectInventory(runner: Runner, settings: Settings): Promise<Inventory> {
  const warnings: string[] = [];
  const ports: GuestPort[] = [];
  const running = await listRunningVifs(runner);
  if (running !== undefined) {
    const xen = buildXenInventory(running, readDomuNetworks(findDomuConfigs(settings.xenConfigDir)));
    ports.push(...xen.ports);
    warnings.push(...xen.warnings);
  }
  const containers = await runningContainers(runner);
  for (const ctid of containers ?? []) ports.push(...containerPorts(settings, readContainer(settings, ctid)));
  const seen = new Set<string>();
  for (const port of ports) {
    if (seen.has(port.ifname)) warnings.push(`${port.ifname} is claimed twice (a Xen vif and an OpenVZ veth?); the last one wins`);
    seen.add(port.ifname);
  }
  warnings.push(...overlaps(ports));
  return { ports: [...new Map(ports.map((port) => [port.ifname, port])).values()], warnings, hypervisor: running !== undefined || containers !== undefined };
}
