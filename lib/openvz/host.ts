import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { readOptional, writeAtomic } from '../files.js';
import type { Settings } from '../config/settings.js';
import { VifGuardError } from '../errors.js';
import type { GuestPort } from '../guest/model.js';
import type { Runner } from '../runner.js';
import { loadContainerAddresses, type ContainerAddresses } from './addresses.js';
import { effectiveMask, iptablesSetting, parseContainerConfig, parseVzConfig, validateCtid, type ContainerConfig, type Effective, type IptablesSetting } from './config.js';
import { hostModulesFor } from './modules.js';

/** The real per-container config directory: /etc/vz/conf may be a symlink (RPM, Proxmox). */
export function confDir(settings: Settings): string {
  try {
    return realpathSync(settings.vzConfDir);
  } catch {
    return settings.vzConfDir;
  }
}

export const readText = readOptional;

export function readContainer(settings: Settings, ctid: string, file?: string): ContainerConfig {
  validateCtid(ctid, { source: 'container ID' });
  const path = file ?? join(confDir(settings), `${ctid}.conf`);
  return containerOf(ctid, path, readText(path));
}

/** A container's config from the text of its CTID.conf, read by the caller (undefined: the file does not exist). */
export function containerOf(ctid: string, path: string, text: string | undefined): ContainerConfig {
  if (text === undefined) throw new VifGuardError('INVALID_INPUT', `no container ${ctid}: ${path} does not exist`);
  return parseContainerConfig(text, ctid, path);
}

export function readGlobalIptables(settings: Settings): IptablesSetting | undefined {
  const text = readText(settings.vzConf);
  return text === undefined ? undefined : iptablesSetting(parseVzConfig(text), settings.vzConf);
}

export function containerEffective(settings: Settings, ct: ContainerConfig): Effective {
  return effectiveMask(ct, readGlobalIptables(settings), settings.vzConf);
}


/** Load the host modules a mask needs; each failure names the module. Returns what was asked for. */
export async function loadHostModules(runner: Runner, mask: bigint): Promise<string[]> {
  const modules = hostModulesFor(mask);
  for (const module of modules) {
    const result = await runner.run('modprobe', [module]);
    if (result.exitCode !== 0) {
      throw new VifGuardError('KERNEL', `modprobe ${module} failed on the host: ${result.stderr.trim().split('\n')[0] ?? ''}`);
    }
  }
  return modules;
}

/** Add modules to vif-guard's modules-load.d file (kept sorted, one per line), so they load at boot. */
export function persistHostModules(settings: Settings, modules: readonly string[]): boolean {
  const current = (readText(settings.modulesLoadFile) ?? '').split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
  const all = [...new Set([...current, ...modules])].sort();
  if (all.length === current.length) return false;
  writeAtomic(settings.modulesLoadFile, `# Written by vif-guard ve allow: host modules OpenVZ containers were allowed to use.\n${all.join('\n')}\n`);
  return true;
}

/**
 * The ports of one container's bridged veths, with the addresses vif-guard's containers.conf gives
 * them. Alone (a hook) it reads only that container's sections; a caller that asks for many
 * containers (sync) passes the whole file read once: read per container, sync of 4,000 containers
 * parsed it 4,000 times and took over a minute.
 */
export function containerPorts(settings: Settings, ct: ContainerConfig, all: ContainerAddresses = loadContainerAddresses(settings.containersConf, ct.ctid)): GuestPort[] {
  const addresses = all.get(ct.ctid);
  return ct.veths.map((veth) => ({
    ifname: veth.hostIfname,
    guest: `ct${ct.ctid}`,
    bridge: veth.bridge,
    mac: veth.mac,
    addresses: [...(addresses?.get(veth.ifname) ?? [])],
    key: `vz:${ct.ctid}/${veth.ifname}`,
  }));
}

/** Running containers, from vzlist; undefined when vzctl is not installed (not an OpenVZ node). */
export async function runningContainers(runner: Runner): Promise<string[] | undefined> {
  if (!runner.which('vzlist')) return undefined;
  const result = await runner.run('vzlist', ['-H', '-o', 'ctid']);
  if (result.exitCode !== 0) throw new VifGuardError('INVALID_INPUT', `vzlist failed: ${result.stderr.trim()}; nothing was changed`);
  return result.stdout.split('\n').map((line) => line.trim()).filter((line) => /^\d+$/.test(line));
}

export function ctConfPath(settings: Settings, ctid: string): string {
  return join(confDir(settings), `${ctid}.conf`);
}
