import type { GuestPort } from '../guest/model.js';
import type { Settings } from '../config/settings.js';
import type { ChainSpec, JumpSpec, Ruleset, TableSpec } from './types.js';
import { buildDispatch } from './dispatch.js';
import { FORWARD_CHAIN, IN_ROOT, NOTRACK_CHAIN, OUT_ROOT } from './names.js';
import { buildPortInChain, buildPortOutChain, isGuarded } from './port.js';

export const FILTER_JUMPS: readonly JumpSpec[] = [
  { chain: 'FORWARD', rule: ['-m', 'physdev', '--physdev-is-bridged', '-j', FORWARD_CHAIN] },
  // Guest to dom0 is not forwarded: it meets INPUT with physdev-in set (xen-hotplug.md 6.7).
  { chain: 'INPUT', rule: ['-m', 'physdev', '--physdev-is-in', '-j', IN_ROOT] },
];

export const RAW_JUMPS: readonly JumpSpec[] = [
  // The bridge marks frames for its own MAC PACKET_HOST before PREROUTING; everything else on a
  // guest bridge is switched, never routed or NATed by dom0, and needs no conntrack entry.
  { chain: 'PREROUTING', rule: ['-m', 'pkttype', '--pkt-type', 'otherhost', '-j', NOTRACK_CHAIN] },
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

export function buildRawTable(bridges: readonly (string | undefined)[], settings: Settings): TableSpec {
  if (!settings.notrack) return { table: 'raw', chains: [], jumps: [] };
  const names = [...new Set(bridges.filter((bridge): bridge is string => bridge !== undefined))].sort();
  const rules = names.map((bridge) => ['-i', bridge, '-j', 'CT', '--notrack']);
  return { table: 'raw', chains: [{ name: NOTRACK_CHAIN, rules }], jumps: RAW_JUMPS };
}

/** Everything vif-guard should own for these ports. */
export function buildRuleset(ports: readonly GuestPort[], settings: Settings): Ruleset {
  const guarded = ports.filter((port) => isGuarded(port, settings));
  const portChains = guarded.map((port) => ({
    ifname: port.ifname,
    in: buildPortInChain(port, settings),
    out: buildPortOutChain(port, settings),
  }));
  return { tables: [buildFilterTable(portChains), buildRawTable(guarded.map((port) => port.bridge), settings)] };
}
