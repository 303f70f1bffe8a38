import type { GuestPort } from '../guest/model.js';
import type { Settings } from '../config/settings.js';
import type { ChainSpec, JumpSpec, NotrackSpec, Ruleset, TableSpec } from './types.js';
import { buildDispatch } from './dispatch.js';
import { FORWARD_CHAIN, IN_ROOT, OUT_ROOT } from './names.js';
import { buildPortInChain, buildPortOutChain, isGuarded } from './port.js';

export const FILTER_JUMPS: readonly JumpSpec[] = [
  { chain: 'FORWARD', rule: ['-m', 'physdev', '--physdev-is-bridged', '-j', FORWARD_CHAIN] },
  // Guest to dom0 is not forwarded: it meets INPUT with physdev-in set (xen-hotplug.md 6.7).
  { chain: 'INPUT', rule: ['-m', 'physdev', '--physdev-is-in', '-j', IN_ROOT] },
];


/** The filter table from the per-port chains that exist (or will), whatever their origin. */
export function buildFilterTable(portChains: readonly { ifname: string; in: ChainSpec; out: ChainSpec }[]): TableSpec {
  const ifnames = portChains.map((port) => port.ifname);
  const chains: ChainSpec[] = [
    { name: FORWARD_CHAIN, rules: [['-j', IN_ROOT], ['-j', OUT_ROOT]] },
    ...buildDispatch('in', ifnames),
    ...buildDispatch('out', ifnames),
    ...portChains.flatMap((port) => [port.in, port.out]),
  ];
  return { table: 'filter', chains, jumps: FILTER_JUMPS };
}

/** The guarded ports and their guests' MACs, for the NOTRACK table; undefined when there is nothing to keep. */
export function buildNotrack(ports: readonly { ifname: string; mac: string | undefined }[], settings: Settings): NotrackSpec | undefined {
  if (!settings.notrack || ports.length === 0) return undefined;
  const macs = ports.map((port) => port.mac).filter((mac): mac is string => mac !== undefined);
  return { ports: [...new Set(ports.map((port) => port.ifname))].sort(), macs: [...new Set(macs)].sort() };
}

/** Everything vif-guard should own for these ports. */
export function buildRuleset(ports: readonly GuestPort[], settings: Settings): Ruleset {
  const guarded = ports.filter((port) => isGuarded(port, settings));
  const portChains = guarded.map((port) => ({
    ifname: port.ifname,
    in: buildPortInChain(port, settings),
    out: buildPortOutChain(port, settings),
  }));
  return { tables: [buildFilterTable(portChains)], notrack: buildNotrack(guarded, settings) };
}
