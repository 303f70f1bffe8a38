import type { GuestPort } from '../guest/model.js';
import { ipv4Addresses } from '../guest/model.js';
import type { GuestAddress } from '../guest/validate.js';
import type { Settings } from '../config/settings.js';
import type { BridgeSpec, ChainSpec, Family, JumpSpec, NotrackSpec, Ruleset, TableSpec } from './types.js';
import { buildDispatch } from './dispatch.js';
import { FORWARD_CHAIN, IN_ROOT, OUT_ROOT } from './names.js';
import { buildPortIn6Chain, buildPortInChain, buildPortOut6Chain, buildPortOutChain, isGuarded } from './port.js';
import { buildGuestL2 } from './l2.js';

export const FILTER_JUMPS: readonly JumpSpec[] = [
  { chain: 'FORWARD', rule: ['-m', 'physdev', '--physdev-is-bridged', '-j', FORWARD_CHAIN] },
  // Guest to dom0 is not forwarded: it meets INPUT with physdev-in set (xen-hotplug.md 6.7).
  { chain: 'INPUT', rule: ['-m', 'physdev', '--physdev-is-in', '-j', IN_ROOT] },
];

export interface PortChains {
  readonly ifname: string;
  readonly in: ChainSpec;
  readonly out: ChainSpec;
}

/** One family's filter table from the per-port chains that exist (or will), whatever their origin. */
export function buildFilterTable(family: Family, portChains: readonly PortChains[]): TableSpec {
  const ifnames = portChains.map((port) => port.ifname);
  const chains: ChainSpec[] = [
    { name: FORWARD_CHAIN, rules: [['-j', IN_ROOT], ['-j', OUT_ROOT]] },
    ...buildDispatch('in', ifnames),
    ...buildDispatch('out', ifnames),
    ...portChains.flatMap((port) => [port.in, port.out]),
  ];
  return { table: 'filter', family, chains, jumps: FILTER_JUMPS };
}

/** What the bridge table needs to know of a port: its name, its guest's MAC, its IPv4 addresses (for ARP). */
export interface L2Port {
  readonly ifname: string;
  readonly mac: string | undefined;
  readonly ipv4: readonly GuestAddress[];
}

/** The guarded ports and their guests' MACs, for NOTRACK; undefined when there is nothing to keep. */
export function buildNotrack(ports: readonly { ifname: string; mac: string | undefined }[], settings: Settings): NotrackSpec | undefined {
  if (!settings.notrack || ports.length === 0) return undefined;
  const macs = ports.map((port) => port.mac).filter((mac): mac is string => mac !== undefined);
  return { ports: [...new Set(ports.map((port) => port.ifname))].sort(), macs: [...new Set(macs)].sort() };
}

export function buildBridge(ports: readonly L2Port[], settings: Settings): BridgeSpec | undefined {
  if (!settings.layer2) return undefined;
  const notrack = buildNotrack(ports, settings);
  const guests = ports.map((port) => buildGuestL2(port.ifname, port.mac, port.ipv4, settings)).sort((a, b) => a.ifname.localeCompare(b.ifname));
  return notrack === undefined && guests.length === 0 ? undefined : { notrack, guests };
}

/** Everything vif-guard should own for these ports. */
export function buildRuleset(ports: readonly GuestPort[], settings: Settings): Ruleset {
  const guarded = ports.filter((port) => isGuarded(port, settings));
  const v4 = guarded.map((port) => ({ ifname: port.ifname, in: buildPortInChain(port, settings), out: buildPortOutChain(port, settings) }));
  const v6 = guarded.map((port) => ({ ifname: port.ifname, in: buildPortIn6Chain(port, settings), out: buildPortOut6Chain(port, settings) }));
  return {
    tables: [buildFilterTable(4, v4), buildFilterTable(6, v6)],
    bridge: buildBridge(guarded.map((port) => ({ ifname: port.ifname, mac: port.mac, ipv4: ipv4Addresses(port) })), settings),
  };
}
