import { readFileSync, rmSync } from 'node:fs';
import { writeAtomic } from '../files.js';
import type { BridgeSpec } from '../rules/types.js';
import { bridgeFromRecords, type LiveBridge } from './nft-bridge.js';

/*
 * What the nftables backend last committed, kept in /run (tmpfs, gone at reboot) next to the lock:
 * each port's record (the comment on its guarded element). A hook reads this small file instead of
 * asking nft, which lists the set in 30 ms at 4,000 guests and is most of a hook's cost.
 *
 * It is only ever trusted under the lock, removed before every commit and rewritten after it, so a
 * hook killed mid-way leaves no file and the next one reads the kernel. A file from a missing or
 * other layout makes the commit fail (its set does not exist), and the engine then reads the kernel.
 */
export function portCachePath(lockPath: string): string {
  return `${lockPath.replace(/\.lock$/, '')}-ports.json`;
}

/** Each port's record (ifname -> comment), when the file is there and describes this layout. */
export function readPortRecords(path: string, digest: string): Record<string, string> | undefined {
  try {
    const data = JSON.parse(readFileSync(path, 'utf8')) as { digest?: unknown; ports?: unknown };
    if (data.digest !== digest || typeof data.ports !== 'object' || data.ports === null) return undefined;
    return data.ports as Record<string, string>;
  } catch {
    return undefined;
  }
}

export function readPortCache(path: string, digest: string): LiveBridge | undefined {
  const records = readPortRecords(path, digest);
  return records ? bridgeFromRecords(digest, records) : undefined;
}

export function writePortRecords(path: string, digest: string, ports: Readonly<Record<string, string>>): void {
  try {
    writeAtomic(path, JSON.stringify({ digest, ports }), 0o600);
  } catch {
    try {
      dropPortCache(path);
    } catch {
      // Nothing more to do: a stale file fails its next commit, which then reads the kernel.
    }
  }
}

export function dropPortCache(path: string): void {
  rmSync(path, { force: true });
}

/** After a commit: the ports as they now are. Failing to write only costs the next hook a kernel read. */
export function writePortCache(path: string, desired: BridgeSpec | undefined): void {
  if (!desired) {
    dropPortCache(path);
    return;
  }
  const ports: Record<string, string> = {};
  for (const port of desired.ports) ports[port.ifname] = port.comment;
  writePortRecords(path, desired.digest, ports);
}
