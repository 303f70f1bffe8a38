import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { readIfPresent, writeAtomic } from '../files.js';
import type { Settings } from '../config/settings.js';
import type { Runner } from '../runner.js';
import { besideLock } from '../lock.js';
import { portCachePath } from '../backend/bridge-cache.js';
import { nftErrorLine } from '../backend/nft-bridge.js';
import { bridgeSkeleton } from '../rules/bridge.js';
import type { Engine } from '../rules/build.js';

/*
 * What enforces on this host: the backend (nftables or iptables) and, on the iptables backend, the
 * layer-2 tool (nft's bridge family or ebtables). Both follow the admin's settings, else what the
 * kernel can load, asked once per boot.
 */

/** Which backend enforces: the admin's choice, or nftables when `auto` finds nft and a kernel that can load its table. */
export async function chooseEngine(runner: Runner, settings: Settings, lockPath?: string): Promise<Engine> {
  if (settings.backend === 'nftables') return 'nftables';
  if (settings.backend !== 'auto') return 'iptables';
  return (await nftablesUnavailable(runner, settings, lockPath)) === undefined ? 'nftables' : 'iptables';
}

/** What this process's runner already heard from the kernel (doctor and status ask more than once, and keep nothing in /run). */
const answers = new WeakMap<Runner, Map<string, string | undefined>>();

async function probe(runner: Runner, body: readonly string[]): Promise<string | undefined> {
  const script = `table bridge vif_guard_probe {\n${body.join('\n')}\n}\n`;
  const result = await runner.run('nft', ['-c', '-f', '-'], { input: script, timeout: 10_000 });
  const error = nftErrorLine(result.stderr) ?? (result.stderr.trim().split('\n')[0] || `exit ${result.exitCode}`);
  return result.exitCode === 0 ? undefined : `this kernel cannot load the nftables backend's table (${error}); it needs Linux 5.6 or later with nf_tables`;
}

function probePath(lockPath: string): string {
  return besideLock(lockPath, '-nftables.probe');
}

/**
 * Why the nftables backend cannot run on this host, or undefined when it can. nf_tables alone is not
 * enough: the table needs concatenated interval sets (Linux 5.6) and bridge-family notrack (5.3), so
 * the kernel is asked to check the table itself (`nft -c` sends it and aborts the transaction). The
 * answer is kept in /run for this boot, per kernel and layout; this boot's port cache also answers yes.
 */
export async function nftablesUnavailable(runner: Runner, settings: Settings, lockPath?: string): Promise<string | undefined> {
  if (!runner.which('nft')) return 'nft is not installed';
  if (lockPath && existsSync(portCachePath(lockPath))) return undefined;
  const skeleton = bridgeSkeleton(settings, true);
  const stamp = `${skeleton.digest} ${release()}\t`;
  // No lock path (doctor, status): ask, and keep nothing.
  const file = lockPath === undefined || lockPath === '' ? undefined : probePath(lockPath);
  const kept = file === undefined ? undefined : readIfPresent(file);
  if (kept?.startsWith(stamp)) {
    const answer = kept.slice(stamp.length).trim();
    return answer === 'ok' ? undefined : answer;
  }
  const asked = answers.get(runner) ?? new Map<string, string | undefined>();
  answers.set(runner, asked);
  if (!asked.has(stamp)) asked.set(stamp, await probe(runner, skeleton.body));
  const reason = asked.get(stamp);
  if (file !== undefined) {
    try {
      writeAtomic(file, `${stamp}${reason ?? 'ok'}\n`, 0o600);
    } catch {
      // Only costs the next hook another probe.
    }
  }
  return reason;
}

/**
 * What enforces MAC, ARP and ethertype checks on the iptables backend: nft's bridge family where the
 * kernel can load vif-guard's table (asked once per boot, see nftablesUnavailable), else ebtables
 * when it is installed; `layer2_tool` forces one. undefined with `layer2 = no`.
 */
export async function layer2Tool(ctx: { readonly runner: Runner; readonly settings: Settings; readonly lockPath: string }): Promise<'nftables' | 'ebtables' | undefined> {
  const { settings, runner } = ctx;
  if (!settings.layer2) return undefined;
  if (settings.layer2Tool !== 'auto') return settings.layer2Tool;
  if ((await nftablesUnavailable(runner, settings, ctx.lockPath)) === undefined) return 'nftables';
  return runner.which('ebtables') ? 'ebtables' : 'nftables';
}
