import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestPort } from '../guest/model.js';

const netDir = () => join(process.env.VIF_GUARD_SYS ?? '/sys', 'class/net');

/**
 * An interface's index from sysfs (a file read, no process), or undefined when it does not exist (a
 * sync for a guest whose vif is gone, a dry run elsewhere). The name is validated: no path tricks.
 */
export function ifindexOf(ifname: string): number | undefined {
  try {
    const text = readFileSync(join(netDir(), ifname, 'ifindex'), 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

export function withIfindex(port: GuestPort, existing?: ReadonlySet<string>): GuestPort {
  if (port.ifindex !== undefined || (existing !== undefined && !existing.has(port.ifname))) return port;
  return { ...port, ifindex: ifindexOf(port.ifname) };
}

/** The interfaces that exist (one directory read), so that sync reads indexes only for those. */
export function existingInterfaces(): ReadonlySet<string> | undefined {
  try {
    return new Set(readdirSync(netDir()));
  } catch {
    return undefined;
  }
}
