import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Settings } from '../config/settings.js';
import { VifGuardError } from '../errors.js';
import type { GuestPort } from '../guest/model.js';
import { addressRange } from '../guest/validate.js';
import type { Runner } from '../runner.js';
import { findDomuConfigs } from '../xen/domu-files.js';
import { parseDomuConfig } from '../xen/domu-config.js';
import { buildXenInventory, listRunningVifs } from '../xen/inventory.js';
import { buildDomuNetwork } from '../xen/vif-spec.js';
import { confDir, containerPorts, runningContainers } from '../openvz/host.js';
import { parseContainerAddresses } from '../openvz/addresses.js';
import { parseContainerConfig, validateCtid } from '../openvz/config.js';

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

/** A file as read for the inventory: its text, undefined when it does not exist, or why it could not be read. */
type Read = { readonly path: string; readonly text: string | undefined; readonly error?: string };

function readForInventory(path: string): Read {
  try {
    return { path, text: readFileSync(path, 'utf8') };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { path, text: undefined } : { path, text: undefined, error: (error as Error).message };
  }
}

function textOf(read: Read, missing: () => string | undefined): string | undefined {
  if (read.error !== undefined) throw new VifGuardError('INVALID_INPUT', `cannot read ${read.path}: ${read.error}`);
  if (read.text === undefined) {
    const why = missing();
    if (why !== undefined) throw new VifGuardError('INVALID_INPUT', why);
  }
  return read.text;
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
  const domus = running === undefined ? [] : findDomuConfigs(settings.xenConfigDir).map(readForInventory);
  const containers = await runningContainers(runner);
  // The conf directory resolved and containers.conf read once, not per container.
  const dir = containers?.length ? confDir(settings) : '';
  const addresses = containers?.length ? readForInventory(settings.containersConf) : undefined;
  const confs = (containers ?? []).map((ctid) => ({ ctid, read: readForInventory(join(dir, `${validateCtid(ctid, { source: 'container ID' })}.conf`)) }));
  const hash = createHash('sha256').update(JSON.stringify({ running, containers, dir }));
  for (const read of [...domus, ...(addresses ? [addresses] : []), ...confs.map((conf) => conf.read)]) {
    hash.update(`\0${read.path}\0${read.error ?? (read.text === undefined ? '-' : `+${read.text.length}`)}\0`);
    if (read.text !== undefined) hash.update(read.text);
  }
  return {
    digest: hash.digest('hex'),
    parse: () => {
      const warnings: string[] = [];
      const ports: GuestPort[] = [];
      if (running !== undefined) {
        const networks = domus.map((read) => buildDomuNetwork(parseDomuConfig(textOf(read, () => `cannot read ${read.path}: it no longer exists`) ?? '', read.path), read.path));
        const xen = buildXenInventory(running, networks);
        ports.push(...xen.ports);
        warnings.push(...xen.warnings);
      }
      if (addresses) {
        const text = textOf(addresses, () => undefined);
        const all = text === undefined ? new Map() : parseContainerAddresses(text, addresses.path);
        for (const { ctid, read } of confs) {
          const conf = textOf(read, () => `no container ${ctid}: ${read.path} does not exist`) ?? '';
          ports.push(...containerPorts(settings, parseContainerConfig(conf, ctid, read.path), all));
        }
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
