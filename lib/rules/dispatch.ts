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

function portChain(direction: Direction, ifname: string): string {
  return direction === 'in' ? portInChain(ifname) : portOutChain(ifname);
}

function physdev(direction: Direction, name: string): Rule {
  return direction === 'in'
    ? ['-m', 'physdev', '--physdev-in', name]
    : ['-m', 'physdev', '--physdev-out', name, '--physdev-is-bridged'];
}

/** One dispatch chain's entries, in order: a port's own chain, or the chain of a longer shared prefix. */
export type DispatchEntry = { readonly port: string } | { readonly branch: string };

function commonPrefix(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a.charCodeAt(i) === b.charCodeAt(i)) i += 1;
  return a.slice(0, i);
}

/**
 * The radix tree as data, keyed by prefix (`''` is the root), parents before children. Names are
 * sorted, so every group of names sharing a prefix is a contiguous range whose common prefix is that
 * of its first and last names: building it is linear in the names times the tree's depth.
 */
export function dispatchTree(ifnames: readonly string[]): Map<string, DispatchEntry[]> {
  const names = [...new Set(ifnames)].sort();
  const tree = new Map<string, DispatchEntry[]>();
  const visit = (prefix: string, lo: number, hi: number): void => {
    const entries: DispatchEntry[] = [];
    tree.set(prefix, entries);
    let i = lo;
    if (names[i] === prefix) {
      entries.push({ port: prefix });
      i += 1;
    }
    while (i < hi) {
      const key = (names[i] as string).charCodeAt(prefix.length);
      let j = i + 1;
      while (j < hi && (names[j] as string).charCodeAt(prefix.length) === key) j += 1;
      if (j - i === 1) entries.push({ port: names[i] as string });
      else {
        const child = commonPrefix(names[i] as string, names[j - 1] as string);
        entries.push({ branch: child });
        visit(child, i, j);
      }
      i = j;
    }
  };
  visit('', 0, names.length);
  return tree;
}

/** One node's chain name and rules for one direction. */
export function dispatchChainOf(direction: Direction, prefix: string, entries: readonly DispatchEntry[]): ChainSpec {
  const rules = entries.map((entry): Rule =>
    'port' in entry ? [...physdev(direction, entry.port), '-j', portChain(direction, entry.port)] : [...physdev(direction, `${entry.branch}+`), '-j', dispatchChain(direction, entry.branch)],
  );
  return { name: prefix === '' ? (direction === 'in' ? IN_ROOT : OUT_ROOT) : dispatchChain(direction, prefix), rules };
}

/** The root chain (vif-guard-in / vif-guard-out) and every dispatch chain below it, for these port names. */
export function buildDispatch(direction: Direction, ifnames: readonly string[]): ChainSpec[] {
  return [...dispatchTree(ifnames)].map(([prefix, entries]) => dispatchChainOf(direction, prefix, entries));
}
