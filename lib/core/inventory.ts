import type { Settings } from '../config/settings.js';
import type { GuestPort } from '../guest/model.js';
import type { Runner } from '../runner.js';
import { findDomuConfigs, readDomuNetworks } from '../xen/domu-files.js';
import { buildXenInventory, listRunningVifs } from '../xen/inventory.js';

export interface Inventory {
  /** Every port that should exist now, validated. */
  readonly ports: GuestPort[];
  readonly warnings: string[];
  /** False when this host has no hypervisor toolstack vif-guard can read (then nothing is known to be running). */
  readonly hypervisor: boolean;
}

/** What sync protects: running Xen domains (xenstore) with their domU configs. Throws, changing nothing, on any bad value. */
export async function collectInventory(runner: Runner, settings: Settings): Promise<Inventory> {
  const running = await listRunningVifs(runner);
  const configs = readDomuNetworks(findDomuConfigs(settings.xenConfigDir));
  if (running === undefined) {
    const warnings = configs.some((config) => config.vifs.length > 0) ? ['xenstore clients are not installed: no running domain can be seen'] : [];
    return { ports: [], warnings, hypervisor: false };
  }
  const xen = buildXenInventory(running, configs);
  return { ports: xen.ports, warnings: xen.warnings, hypervisor: true };
}
