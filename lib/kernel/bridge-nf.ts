import { readFileSync, writeFileSync } from 'node:fs';
import { VifGuardError } from '../errors.js';
import type { Runner } from '../runner.js';

export const BRIDGE_NF_KEYS = ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables'] as const;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * physdev rules see bridged packets only with br_netfilter loaded and bridge-nf-call-*tables=1
 * (xen-hotplug.md 6.2); without them the rules silently match nothing, so this throws instead.
 * The values are per network namespace on Linux >= 5.3.
 */
export async function ensureBridgeNetfilter(runner: Runner, procSysNetBridge = '/proc/sys/net/bridge'): Promise<string[]> {
  const actions: string[] = [];
  if (read(`${procSysNetBridge}/${BRIDGE_NF_KEYS[0]}`) === undefined) {
    const result = await runner.run('modprobe', ['br_netfilter']).catch((error: unknown) => ({ exitCode: 1, stderr: String(error) }));
    if (result.exitCode !== 0) {
      throw new VifGuardError('KERNEL', `br_netfilter is not loaded and modprobe br_netfilter failed: ${result.stderr.trim().split('\n')[0] ?? ''}`);
    }
    actions.push('loaded br_netfilter');
  }
  for (const key of BRIDGE_NF_KEYS) {
    const path = `${procSysNetBridge}/${key}`;
    const value = read(path);
    if (value === undefined) throw new VifGuardError('KERNEL', `${path} does not exist after loading br_netfilter`);
    if (value === '1') continue;
    try {
      writeFileSync(path, '1\n');
    } catch (error) {
      throw new VifGuardError('KERNEL', `net.bridge.${key} is ${value} and could not be set to 1: ${(error as Error).message}`, { cause: error });
    }
    if (read(path) !== '1') throw new VifGuardError('KERNEL', `net.bridge.${key} stays ${read(path)} after writing 1`);
    actions.push(`set net.bridge.${key}=1`);
  }
  return actions;
}
