import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { VifGuardError } from '../errors.js';
import { parseDomuConfig } from './domu-config.js';
import { buildDomuNetwork, type DomuNetwork } from './vif-spec.js';

const NOT_DOMU = new Set(['xl.conf', 'xend-config.sxp', 'cpupool', 'oxenstored.conf', 'xen-config.sxp']);

/** domU config candidates in a directory: *.cfg, and xm-style files without an extension that mention vif. */
export function findDomuConfigs(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((name) => !NOT_DOMU.has(name) && !name.startsWith('.') && !name.startsWith('xlexample'))
    .map((name) => join(dir, name))
    .filter((path) => {
      try {
        if (!statSync(path).isFile()) return false;
        if (path.endsWith('.cfg')) return true;
        if (/\.[A-Za-z]+$/.test(path)) return false;
        return /^\s*vif\s*=/m.test(readFileSync(path, 'utf8'));
      } catch {
        return false;
      }
    })
    .sort();
}

/** Parse every file; one bad file is an error naming it, and nothing is applied. */
export function readDomuNetworks(paths: readonly string[]): DomuNetwork[] {
  return paths.map((path) => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new VifGuardError('INVALID_INPUT', `cannot read ${path}: ${(error as Error).message}`);
    }
    return domuNetworkOf(text, path);
  });
}

/** One domU config's vifs, from its text (undefined: the file went away after it was listed). */
export function domuNetworkOf(text: string | undefined, path: string): DomuNetwork {
  if (text === undefined) throw new VifGuardError('INVALID_INPUT', `cannot read ${path}: it no longer exists`);
  return buildDomuNetwork(parseDomuConfig(text, path), path);
}
