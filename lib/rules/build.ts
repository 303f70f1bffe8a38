import type { GuestPort } from '../guest/model.js';
import type { Settings } from '../config/settings.js';
import type { BridgeBlock, ChainSpec, Family, IpsetSpec, JumpSpec, Ruleset, TableSpec } from './types.js';
import { buildDispatch } from './dispatch.js';
import { FORWARD_CHAIN, IN_ROOT, OUT_ROOT } from './names.js';
import { buildPortIn6Chain, buildPortInChain, buildPortOut6Chain, buildPortOutChain, isGuarded, type PortIpsets } from './port.js';
import { buildBridgeSpec } from './bridge.js';

/** Where the IP checks live: iptables physdev chains (with layer 2 in nft), or nft's bridge family alone. */
export type Engine = 'iptables' | 'nftables';

export const FILTER_JUMPS: readonly JumpSpec[] = [
  { chain: 'FORWARD', rule: ['-m', 'physdev', '--physdev-is-bridged', '-j', FORWARD_CHAIN] },
  // Guest to dom0 is not forwarded: it meets INPUT with physdev-in set (xen-hotplug.md 6.7).
  { chain: 'INPUT', rule: ['-m', 'physdev', '--physdev-is-in', '-j', IN_ROOT] },
];

/** vif-guard-fwd: bridged traffic meets the from-guest checks, then the to-guest checks. */
export const FORWARD_CHAIN_SPEC: ChainSpec = { name: FORWARD_CHAIN, rules: [['-j', IN_ROOT], ['-j', OUT_ROOT]] };

export interface PortChains {
  readonly ifname: string;
  readonly in: ChainSpec;
  readonly out: ChainSpec;
}

/** One family's filter table from the per-port chains that exist (or will), whatever their origin. */
export function buildFilterTable(family: Family, portChains: readonly PortChains[]): TableSpec {
  const ifnames = portChains.map((port) => port.ifname);
  const chains: ChainSpec[] = [
    FORWARD_CHAIN_SPEC,
    ...buildDispatch('in', ifnames),
    ...buildDispatch('out', ifnames),
    ...portChains.flatMap((port) => [port.in, port.out]),
  ];
  return { table: 'filter', family, chains, jumps: FILTER_JUMPS };
}

/** A port's chains in both families, each matching first on its blocklists' sets when it has any. */
export function buildPortChains(port: GuestPort, settings: Settings, sets?: PortIpsets): Record<Family, PortChains> {
  return {
    4: { ifname: port.ifname, in: buildPortInChain(port, settings, sets), out: buildPortOutChain(port, settings, sets) },
    6: { ifname: port.ifname, in: buildPortIn6Chain(port, settings, sets), out: buildPortOut6Chain(port, settings, sets) },
  };
}

/** Everything vif-guard should own for these ports: IP checks in iptables, or all of it in the bridge table. */
export function buildRuleset(ports: readonly GuestPort[], settings: Settings, engine: Engine, blocks?: (port: GuestPort) => BridgeBlock | undefined): Ruleset {
  const guarded = ports.filter((port) => isGuarded(port, settings));
  if (engine === 'nftables') return { tables: NO_TABLES, bridge: buildBridgeSpec(guarded, settings, true, blocks) };
  const ipsets: IpsetSpec[] = [];
  const chains = guarded.map((port) => {
    const blocked = blockedPort(port, blocks);
    ipsets.push(...(blocked?.specs ?? []));
    return { port, sets: blocked?.sets };
  });
  const built = chains.map(({ port, sets }) => buildPortChains(port, settings, sets));
  const [v4, v6] = [built.map((port) => port[4]), built.map((port) => port[6])];
  return { tables: [buildFilterTable(4, v4), buildFilterTable(6, v6)], bridge: buildBridgeSpec(guarded, settings, false), ipsets };
}

/** Every ipset vif-guard creates starts with this (and nothing else does): `vgb-<vif>-<i|o><4|6>-<digest>`, at most 29 characters. */
export const IPSET_PREFIX = 'vgb-';

/** A blocked port's four set names; a new digest (the lists were rewritten) is a new set, switched to by the chains' commit. */
export function blockIpsets(ifname: string, block: BridgeBlock): PortIpsets {
  const name = (which: string) => `${IPSET_PREFIX}${ifname}-${which}-${block.digest.slice(0, 6)}`;
  return { in4: name('i4'), in6: name('i6'), out4: name('o4'), out6: name('o6') };
}

/** A port's blocklist sets (names for its chains, specs to create them), or undefined when it has no lists. */
export function blockedPort(port: GuestPort, blocks: ((port: GuestPort) => BridgeBlock | undefined) | undefined): { sets: PortIpsets; specs: IpsetSpec[] } | undefined {
  const block = blocks?.(port);
  if (!block) return undefined;
  const sets = blockIpsets(port.ifname, block);
  return { sets, specs: ipsetSpecs(sets, block) };
}

function ipsetSpecs(sets: PortIpsets, block: BridgeBlock): IpsetSpec[] {
  let elements: ReturnType<BridgeBlock['elements']> | undefined;
  const of = (pick: (all: ReturnType<BridgeBlock['elements']>) => readonly string[]) => () => pick((elements ??= block.elements()));
  return [
    { name: sets.in4, family: 4, elements: of((all) => all.in4) },
    { name: sets.in6, family: 6, elements: of((all) => all.in6) },
    { name: sets.out4, family: 4, elements: of((all) => all.out4) },
    { name: sets.out6, family: 6, elements: of((all) => all.out6) },
  ];
}

/** No vif-guard chain or jump in either family's filter table (the nftables backend, uninstall). */
export const NO_TABLES: readonly TableSpec[] = [4, 6].map((family) => ({ table: 'filter', family: family as Family, chains: [], jumps: [] }));
