import { readIfPresent } from '../files.js';
import { besideLock } from '../lock.js';
import type { Variant } from './iptables.js';
import { PortRecords } from './bridge-cache.js';

/*
 * What the iptables backend last committed, kept in /run next to the lock like the nftables
 * backend's cache: a line naming the iptables variant and the layer-2 layout, then one line per
 * guarded port with its layer-2 record (guest, bridge, MAC, key, IPv4 addresses). The port names
 * are all a hook needs to rebuild the dispatch chains its port passes through; the record is what
 * its bridge-table elements were. Same rules as the other cache: trusted only under the lock,
 * removed before every commit and rewritten after it.
 */
export function iptablesCachePath(lockPath: string): string {
  return besideLock(lockPath, '-iptables.cache');
}

export function iptablesCacheHeader(variant: Variant, l2Digest: string | undefined): string {
  return `iptables-${variant} l2=${l2Digest ?? '-'}`;
}

/** The cache and the variant it was written for, when its layer-2 part matches and the variant is the one asked for (or any, for `auto`). */
export function readIptablesCache(path: string, variant: 'auto' | Variant, l2Digest: string | undefined): { records: PortRecords; variant: Variant } | undefined {
  const text = readIfPresent(path);
  if (text === undefined) return undefined;
  const first = text.split('\n', 1)[0] ?? '';
  const found = (['nft', 'legacy'] as const).find((v) => first === iptablesCacheHeader(v, l2Digest));
  if (found === undefined || (variant !== 'auto' && variant !== found)) return undefined;
  const records = PortRecords.fromText(text);
  return records ? { records, variant: found } : undefined;
}
