import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestPort } from '../guest/model.js';
import type { Runner } from '../runner.js';

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

/** A port with its interface index: from `indexes` (every interface's, read at once), else from sysfs when `existing` does not rule it out. */
export function withIfindex(port: GuestPort, existing?: ReadonlySet<string> | ReadonlyMap<string, number>): GuestPort {
  if (port.ifindex !== undefined) return port;
  if (existing instanceof Map) return { ...port, ifindex: existing.get(port.ifname) };
  if (existing !== undefined && !existing.has(port.ifname)) return port;
  return { ...port, ifindex: ifindexOf(port.ifname) };
}

// `7: vif1.0: <...` or, for a veth, `9: veth101.0@if2: <...`. A name with characters no port name
// has (parseIfname) matches nothing, so it cannot pass for a shorter one.
const LINK = /^(\d+): ([A-Za-z0-9_.-]+)(?:@(?:NONE|if\d+|[A-Za-z0-9_.-]+))?: </;

/** `ip -o link show` as interface name -> index. */
export function parseLinkIndexes(text: string): Map<string, number> {
  const indexes = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = LINK.exec(line);
    if (match?.[1] && match[2]) indexes.set(match[2], Number(match[1]));
  }
  return indexes;
}

/**
 * Every interface's index from one `ip -o link show`, for sync: 4,000 sysfs reads took 150 ms of
 * node's only thread, the listing ~20 ms of ip's on another core. undefined when ip fails or lists
 * nothing (every host has `lo`); the caller then reads sysfs.
 */
export async function interfaceIndexes(runner: Runner): Promise<ReadonlyMap<string, number> | undefined> {
  const result = await runner.run('ip', ['-o', 'link', 'show'], { spool: true }).catch(() => undefined);
  if (result?.exitCode !== 0) return undefined;
  const indexes = parseLinkIndexes(result.stdout);
  return indexes.size > 0 ? indexes : undefined;
}

/** The interfaces that exist (one directory read), so that sync reads indexes only for those. */
export function existingInterfaces(): ReadonlySet<string> | undefined {
  try {
    return new Set(readdirSync(netDir()));
  } catch {
    return undefined;
  }
}
