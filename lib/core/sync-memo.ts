import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { writeAtomic } from '../files.js';
import { besideLock } from '../lock.js';
import type { Settings } from '../config/settings.js';
import { portCachePath } from '../backend/bridge-cache.js';
import { iptablesCachePath } from '../backend/iptables-cache.js';
import type { Blocklist } from '../blocklist/store.js';

/**
 * sync's memo: after a sync that found nothing to do, what it was computed from and what the kernel
 * held then, as digests. The next sync compares the same digests before it parses anything: the
 * same inputs and the same kernel state give the same empty plan, so it is skipped. Nothing in it
 * is trusted beyond equality: any change to a config file, the running guests, the settings, the
 * saved blocklists, vif-guard itself, the hooks' cache in /run or the listed sets is a miss, and a
 * miss is a full sync. In /run, so every boot starts with a full one.
 */
export interface Memo {
  /** Everything the desired state is computed from, and the hooks' cache as this sync left it. */
  readonly key: string;
  /** nft's listing of the sets sync repairs, byte for byte. */
  readonly listing: string;
  /** What the command reports for a sync with nothing to do (counts, warnings). */
  readonly payload: unknown;
}

export function memoPath(lockPath: string): string {
  return besideLock(lockPath, '-sync.memo');
}

/** The running code: the bundle's digest (build.mjs's loader sets it); undefined when run from sources, where no memo is kept. */
export function buildId(): string | undefined {
  const id = (globalThis as { __vifGuardBuild?: unknown }).__vifGuardBuild;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

export const digestOf = (...parts: readonly (string | undefined)[]): string => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part === undefined ? '\0-' : `\0+${part.length}\0${part}`);
  return hash.digest('hex');
};

/** A file's content as a digest, `-` when it is missing (the hooks' caches). */
export function fileDigest(path: string): string {
  try {
    return digestOf(readFileSync(path, 'utf8'));
  } catch {
    return '-';
  }
}

export function readMemo(path: string): Memo | undefined {
  try {
    const memo = JSON.parse(readFileSync(path, 'utf8')) as Partial<Memo>;
    return typeof memo.key === 'string' && typeof memo.listing === 'string' ? (memo as Memo) : undefined;
  } catch {
    return undefined;
  }
}

/** Failing to write only costs the next sync its full run. */
export function writeMemo(path: string, memo: Memo): void {
  try {
    writeAtomic(path, `${JSON.stringify(memo)}\n`, 0o600);
  } catch {
    dropMemo(path);
  }
}

export function dropMemo(path: string): void {
  rmSync(path, { force: true });
}

/**
 * The memo as the engine uses it on a sync (engine.ts, applyNftables). It lives here, not in the
 * engine, so that hooks, which load the engine, never load node:crypto (~10 ms of their start).
 */
export interface SyncMemo {
  /** The kept memo's payload, when every input, the saved `lists`, the caches and nft's `listing` (awaited only if all else matched) are as they were. */
  recall(lists: readonly Blocklist[], listing: Promise<readonly string[] | undefined>): Promise<{ readonly payload: unknown } | undefined>;
  /** After a sync that found nothing to do, with the listing it read; undefined forgets the memo. */
  keep(lists: readonly Blocklist[], listing: readonly string[] | undefined): Promise<void>;
}

/**
 * sync's memo for these inputs (`inputs`: a digest of everything the ports are parsed from), or
 * undefined when run from sources (no build to name). `payload`: what to report on a hit.
 */
export function syncMemo(context: { readonly settings: Settings; readonly lockPath: string }, inputs: () => Promise<string>, payload: () => unknown): SyncMemo | undefined {
  const build = buildId();
  if (build === undefined) return undefined;
  const path = memoPath(context.lockPath);
  // Everything the plan depends on besides the kernel: the raw inputs, the settings, the saved lists,
  // this code, and the hooks' caches as the last sync left them (taken after this one rewrote them).
  const key = async (lists: readonly Blocklist[]) =>
    digestOf(build, await inputs(), JSON.stringify(context.settings), context.lockPath, JSON.stringify(lists), fileDigest(portCachePath(context.lockPath)), fileDigest(iptablesCachePath(context.lockPath)));
  return {
    async recall(lists, listing) {
      const [kept, now] = [readMemo(path), await key(lists)];
      if (kept?.key !== now) return undefined;
      // nft's listing is awaited only when everything else matched: on a miss the configs are parsed
      // while nft still lists, as without a memo.
      const texts = await listing;
      return texts && kept.listing === digestOf(...texts) ? { payload: kept.payload } : undefined;
    },
    async keep(lists, listing) {
      if (listing) writeMemo(path, { key: await key(lists), listing: digestOf(...listing), payload: payload() });
      else dropMemo(path);
    },
  };
}
