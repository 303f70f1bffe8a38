import type { ChainSpec, Rule } from './types.js';
import { dispatchChain, IN_ROOT, OUT_ROOT, portInChain, portOutChain, type Direction } from './names.js';

/*
 * Dispatch from a bridged packet to its port's chain without a linear list of ports.
 * xt_physdev matches a name or a `prefix+` wildcard, and ipset's `physdev:` elements are never
 * matched from iptables (the set match cannot pass IPSET_FLAG_PHYSDEV), so the ports form a
 * radix tree of chains keyed on name prefixes. A packet walks at most one chain per distinct
 * branching point of its port's name: the cost depends on name length, not on how many guests
 * the host runs.
 */

function physdev(direction: Direction, name: string): Rule {
  return direction === 'in'
    ? ['-m', 'physdev', '--physdev-in', name]
    : ['-m', 'physdev', '--physdev-out', name, '--physdev-is-bridged'];
}

function longestCommonPrefix(names: readonly string[]): string {
  let prefix = names[0] ?? '';
  for (const name of names) {
    while (!name.startsWith(prefix)) prefix = prefix.slice(0, -1);
  }
  return prefix;
}

function portChain(direction: Direction, ifname: string): string {
  return direction === 'in' ? portInChain(ifname) : portOutChain(ifname);
}

function buildNode(direction: Direction, prefix: string, names: readonly string[], chainName: string, out: ChainSpec[]): void {
  const rules: Rule[] = [];
  if (names.includes(prefix)) rules.push([...physdev(direction, prefix), '-j', portChain(direction, prefix)]);
  const groups = new Map<string, string[]>();
  for (const name of names) {
    if (name.length <= prefix.length) continue;
    const key = name.charAt(prefix.length);
    const group = groups.get(key) ?? [];
    group.push(name);
    groups.set(key, group);
  }
  const children: ChainSpec[] = [];
  for (const key of [...groups.keys()].sort()) {
    const group = groups.get(key) ?? [];
    const only = group.length === 1 ? group[0] : undefined;
    if (only !== undefined) {
      rules.push([...physdev(direction, only), '-j', portChain(direction, only)]);
      continue;
    }
    const childPrefix = longestCommonPrefix(group);
    const childChain = dispatchChain(direction, childPrefix);
    rules.push([...physdev(direction, `${childPrefix}+`), '-j', childChain]);
    buildNode(direction, childPrefix, group, childChain, children);
  }
  out.push({ name: chainName, rules }, ...children);
}

/** The root chain (vif-guard-in / vif-guard-out) and every dispatch chain below it, for these port names. */
export function buildDispatch(direction: Direction, ifnames: readonly string[]): ChainSpec[] {
  const names = [...new Set(ifnames)].sort();
  const chains: ChainSpec[] = [];
  buildNode(direction, '', names, direction === 'in' ? IN_ROOT : OUT_ROOT, chains);
  return chains;
}
