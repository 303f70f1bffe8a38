import { join } from 'node:path';
import type { Settings } from '../config/settings.js';
import { readOptional } from '../files.js';
import type { GuestPort } from '../guest/model.js';
import { addressRange } from '../guest/validate.js';
import type { Runner } from '../runner.js';
import { domuNetworkOf, findDomuConfigs } from '../xen/domu-files.js';
import { buildXenInventory, listRunningVifs } from '../xen/inventory.js';
import { confDir, containerOf, containerPorts, runningContainers } from '../openvz/host.js';
import { parseContainerAddresses } from '../openvz/addresses.js';
import { validateCtid } from '../openvz/config.js';
import { digestOf } from './sync-memo.js';

/**
 * Addresses configured for two different guests: each guest is still held to its own list, but
 * either may then use the other's address, which is almost always a config mistake.
 */
export function overlaps(ports: readonly GuestPort[]): string[] {
  // Sort every address range by its first address and sweep: O(n log n), not pairwise, so sync
  // stays fast with thousands of guests.
  const ranges = ports.flatMap((port) =>
    port.addresses.map((address) => {
      const [start, end] = addressRange(address);
      return { port, address, start, end };
    }),
  );
  ranges.sort((a, b) => (a.address.family - b.address.family) || (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const warnings: string[] = [];
  let widest: (typeof ranges)[number] | undefined;
  for (const range of ranges) {
    if (widest && widest.address.family === range.address.family && range.start <= widest.end && widest.port.guest !== range.port.guest) {
      warnings.push(`${widest.address.cidr} (${widest.port.guest}, ${widest.port.ifname}) overlaps ${range.address.cidr} (${range.port.guest}, ${range.port.ifname}): either guest may use those addresses`);
    }
    if (!widest || widest.address.family !== range.address.family || range.end > widest.end) widest = range;
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
 * Everything sync's inventory is computed from, read but not yet parsed: the running guests as the
 * toolstacks list them and the text of every config file. `digest` names all of it (sync's memo,
 * engine.ts); `parse()` turns it into the inventory, throwing on any bad value as collectInventory does.
 */
export interface GatheredInventory {
  readonly digest: string;
  parse(): Inventory;
}

export async function gatherInventory(runner: Runner, settings: Settings): Promise<GatheredInventory> {
  const running = await listRunningVifs(runner);
  // A file that cannot be read fails here, naming it; one that does not exist (undefined) when parsed.
  const domus = running === undefined ? [] : findDomuConfigs(settings.xenConfigDir).map((path) => ({ path, text: readOptional(path) }));
  const containers = await runningContainers(runner);
  // The conf directory resolved and containers.conf read once, not per container.
  const dir = containers?.length ? confDir(settings) : '';
  const addresses = containers?.length ? { path: settings.containersConf, text: readOptional(settings.containersConf) } : undefined;
  const confs = (containers ?? []).map((ctid) => {
    const path = join(dir, `${validateCtid(ctid, { source: 'container ID' })}.conf`);
    return { ctid, path, text: readOptional(path) };
  });
  const files = [...domus, ...(addresses ? [addresses] : []), ...confs];
  return {
    digest: digestOf(JSON.stringify({ running, containers, dir }), ...files.flatMap((file) => [file.path, file.text])),
    parse: () => {
      const warnings: string[] = [];
      const ports: GuestPort[] = [];
      if (running !== undefined) {
        const xen = buildXenInventory(running, domus.map(({ path, text }) => domuNetworkOf(text, path)));
        ports.push(...xen.ports);
        warnings.push(...xen.warnings);
      }
      if (addresses) {
        const all = addresses.text === undefined ? new Map() : parseContainerAddresses(addresses.text, addresses.path);
        for (const { ctid, path, text } of confs) ports.push(...containerPorts(settings, containerOf(ctid, path, text), all));
      }
      const seen = new Set<string>();
      for (const port of ports) {
        if (seen.has(port.ifname)) warnings.push(`${port.ifname} is claimed twice (a Xen vif and an OpenVZ veth?); the last one wins`);
        seen.add(port.ifname);
      }
      warnings.push(...overlaps(ports));
      return { ports: [...new Map(ports.map((port) => [port.ifname, port])).values()], warnings, hypervisor: running !== undefined || containers !== undefined };
    },
  };
}

/**
 * What sync protects: running Xen domains (xenstore) with their domU configs, and running OpenVZ
 * containers' veths (vzlist, CTID.conf, containers.conf). Throws, changing nothing, on any bad value.
 */
export async function collectInventory(runner: Runner, settings: Settings): Promise<Inventory> {
  return (await gatherInventory(runner, settings)).parse();
}
