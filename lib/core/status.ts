import type { GuestPort } from '../guest/model.js';
import type { Settings } from '../config/settings.js';
import type { LiveTable, Counter } from '../backend/save-parse.js';
import { portMatches, type LiveBridge } from '../backend/nft-bridge.js';
import type { DropClass } from '../rules/bridge.js';
import { chainMatches, jumpsInPlace } from '../backend/diff.js';
import { buildRuleset, type Engine } from '../rules/build.js';
import { portInChain, portOfChain, portOutChain } from '../rules/names.js';
import { DHCP6_SERVER, DHCP_SERVER, isGuarded, portMetaOfRules } from '../rules/port.js';
import { renderRuleBody } from '../backend/render.js';
import type { BridgeBlock, ChainSpec, TableSpec } from '../rules/types.js';
import { VifGuardError } from '../errors.js';
import { ebtablesCounters, ebtablesCurrent, type LiveEbtables } from '../backend/ebtables.js';
import { buildEbtables, portOfEbChain } from '../rules/ebtables.js';

export type PortState = 'protected' | 'unprotected' | 'drift' | 'no-addresses' | 'stale';

/** Why vif-guard dropped a packet or frame. */
export const FROM_GUEST_REASONS = ['source4', 'dhcpServer', 'source6', 'routerAdvert', 'redirect', 'dhcpv6Server', 'neighborTarget', 'mac', 'ethertype', 'arpMac', 'arpIp'] as const;
export const TO_GUEST_REASONS = ['notForGuest4', 'notForGuest6'] as const;
export type Reason = (typeof FROM_GUEST_REASONS)[number] | (typeof TO_GUEST_REASONS)[number];

export interface PortStatus {
  readonly guest: string;
  readonly vif: string;
  readonly bridge: string | undefined;
  readonly addresses: string[];
  readonly mac: string | undefined;
  readonly state: PortState;
  /** Everything dropped from the guest (spoofed addresses, forged MAC/ARP, rogue servers). */
  readonly spoofed: Counter;
  readonly dropped: Record<Reason, Counter>;
}

export interface LiveState {
  readonly filter4: LiveTable;
  readonly filter6: LiveTable;
  readonly bridge: LiveBridge | undefined;
  readonly engine: Engine;
  /** vif-guard's ebtables chains, when ebtables enforces layer 2 (the iptables backend on older kernels). */
  readonly ebtables?: LiveEbtables | undefined;
}

type EbCounts = ReadonlyMap<string, ReadonlyMap<string, Counter>>;

const ZERO: Counter = { packets: 0, bytes: 0 };
const add = (a: Counter, b: Counter): Counter => ({ packets: a.packets + b.packets, bytes: a.bytes + b.bytes });

function counterOf(live: LiveTable, chain: string, pick: (body: string) => boolean): Counter {
  const entry = live.chains.get(chain);
  if (!entry) return ZERO;
  return entry.rules.reduce((sum, body, i) => (pick(body) ? add(sum, entry.counters[i] ?? ZERO) : sum), ZERO);
}

// The DHCP server drops as iptables-save prints them (their LOG twins end in LOG's options).
const DHCP_DROP = renderRuleBody([...DHCP_SERVER, '-j', 'DROP']);
const DHCP6_DROP = renderRuleBody([...DHCP6_SERVER, '-j', 'DROP']);

/** Drops per reason: from the iptables chains (iptables backend) and the bridge table's per-port counter sets. */
function countersFor(live: LiveState, vif: string, eb: EbCounts | undefined): Pick<PortStatus, 'spoofed' | 'dropped'> {
  const inChain = portInChain(vif);
  const perClass = live.bridge?.counters.get(vif);
  const ebClass = eb?.get(vif);
  // The bridge table's counter sets, and ebtables' DROP rules for the layer-2 classes it enforces.
  const nft = (cls: DropClass) => add(perClass?.get(cls) ?? ZERO, ebClass?.get(cls) ?? ZERO);
  const dropped: Record<Reason, Counter> = {
    source4: add(nft('src'), counterOf(live.filter4, inChain, (body) => body.includes('--comment') && body.endsWith('-j DROP'))),
    dhcpServer: add(nft('dhcps'), counterOf(live.filter4, inChain, (body) => body.endsWith(DHCP_DROP))),
    source6: add(nft('src6'), counterOf(live.filter6, inChain, (body) => body.includes('--comment') && body.endsWith('-j DROP'))),
    routerAdvert: add(nft('ra'), counterOf(live.filter6, inChain, (body) => body.endsWith('--icmpv6-type 134 -j DROP'))),
    redirect: add(nft('redirect'), counterOf(live.filter6, inChain, (body) => body.endsWith('--icmpv6-type 137 -j DROP'))),
    dhcpv6Server: add(nft('dhcp6s'), counterOf(live.filter6, inChain, (body) => body.endsWith(DHCP6_DROP))),
    neighborTarget: add(nft('nd_target'), counterOf(live.filter6, inChain, (body) => body.includes('--icmpv6-type 136') && body.endsWith('-j DROP'))),
    mac: nft('mac'),
    ethertype: nft('ethertype'),
    arpMac: nft('arp_mac'),
    arpIp: nft('arp_ip'),
    notForGuest4: add(nft('dst'), counterOf(live.filter4, portOutChain(vif), (body) => body === '-j DROP')),
    notForGuest6: add(nft('dst6'), counterOf(live.filter6, portOutChain(vif), (body) => body === '-j DROP')),
  };
  return { spoofed: FROM_GUEST_REASONS.reduce((sum, reason) => add(sum, dropped[reason]), ZERO), dropped };
}

function sharedOk(live: LiveTable, desired: TableSpec | undefined): boolean {
  if (!desired) return true;
  const shared = desired.chains.filter((chain) => portOfChain(chain.name) === undefined && !chain.name.startsWith('vif-guard-o-'));
  const builtins = [...new Set(desired.jumps.map((jump) => jump.chain))];
  return shared.every((chain) => chainMatches(live, chain)) && builtins.every((builtin) => jumpsInPlace(live, desired.jumps, builtin));
}

/** A port's chains against the ones sync would build (`desired`: each family's chains by name, indexed once). */
function iptablesState(live: LiveState, port: GuestPort, desired: Record<4 | 6, ReadonlyMap<string, ChainSpec>>): 'unprotected' | 'exact' | 'drift' {
  if (!live.filter4.chains.has(portInChain(port.ifname))) return 'unprotected';
  const names = [portInChain(port.ifname), portOutChain(port.ifname)];
  const matches = (liveTable: LiveTable, chains: ReadonlyMap<string, ChainSpec>) =>
    names.every((name) => {
      const chain = chains.get(name);
      return chain !== undefined && chainMatches(liveTable, chain);
    });
  return matches(live.filter4, desired[4]) && matches(live.filter6, desired[6]) ? 'exact' : 'drift';
}

/**
 * One row per port that should be protected or still has rules: its state against what sync would
 * build (IPv4, IPv6 and layer 2, in whichever backend enforces them), and its drop counters.
 */
export function buildStatus(live: LiveState, expected: readonly GuestPort[] | undefined, settings: Settings, blocks?: (port: GuestPort) => BridgeBlock | undefined): PortStatus[] {
  const rows: PortStatus[] = [];
  const ruleset = expected ? buildRuleset(expected, settings, live.engine, blocks) : undefined;
  // Layer 2 in ebtables: the same port records as ebtables chains, and no bridge table.
  const eb = live.ebtables && live.engine === 'iptables' ? live.ebtables : undefined;
  const ebCounts = eb ? ebtablesCounters(eb) : undefined;
  const ebDesired = eb ? buildEbtables(ruleset?.bridge?.ports ?? [], settings) : [];
  const bridgeCurrent = eb ? ebtablesCurrent(eb, ebDesired) : ruleset?.bridge === undefined || live.bridge?.digest === ruleset.bridge.digest;
  // Indexed once: a lookup per port, not a scan of every port's chains (4,000 guests).
  const desiredChains = {
    4: new Map((ruleset?.tables.find((table) => table.family === 4)?.chains ?? []).map((chain) => [chain.name, chain])),
    6: new Map((ruleset?.tables.find((table) => table.family === 6)?.chains ?? []).map((chain) => [chain.name, chain])),
  };
  const wantedPorts = new Map((ruleset?.bridge?.ports ?? []).map((port) => [port.ifname, port]));
  const ebChainOf = new Map(ebDesired.flatMap((chain) => {
    const vif = portOfEbChain(chain.name);
    return vif === undefined ? [] : [[vif, chain.name] as const];
  }));
  const sharedDrift = ruleset !== undefined && !(sharedOk(live.filter4, ruleset.tables[0]) && sharedOk(live.filter6, ruleset.tables[1]) && bridgeCurrent);
  const known = new Set<string>();
  for (const port of expected ?? []) {
    known.add(port.ifname);
    const base = { guest: port.guest, vif: port.ifname, bridge: port.bridge, addresses: port.addresses.map((a) => a.cidr), mac: port.mac, ...countersFor(live, port.ifname, ebCounts) };
    if (!isGuarded(port, settings)) {
      rows.push({ ...base, state: 'no-addresses' });
      continue;
    }
    const wanted = wantedPorts.get(port.ifname);
    const inBridge = live.bridge?.ports.get(port.ifname);
    const bridgeOk = wanted === undefined || (eb ? eb.has(ebChainOf.get(wanted.ifname) ?? '') : portMatches(inBridge, wanted, live.engine === 'nftables'));
    const ipState = live.engine === 'nftables' ? (inBridge ? 'exact' : 'unprotected') : iptablesState(live, port, desiredChains);
    rows.push({ ...base, state: ipState === 'unprotected' ? 'unprotected' : ipState === 'exact' && bridgeOk && !sharedDrift ? 'protected' : 'drift' });
  }
  const leftovers = new Map<string, { guest: string; bridge: string | undefined; mac: string | undefined; addresses: string[] }>();
  for (const [chain, entry] of live.filter4.chains) {
    const vif = portOfChain(chain);
    if (vif === undefined || known.has(vif)) continue;
    const meta = portMetaOfRules(entry.rules);
    leftovers.set(vif, { guest: meta?.guest ?? '-', bridge: meta?.bridge, mac: meta?.mac, addresses: entry.rules.flatMap((rule) => /^-s (\S+) -j RETURN$/.exec(rule)?.[1] ?? []) });
  }
  for (const [vif, port] of live.bridge?.ports ?? []) {
    if (known.has(vif) || leftovers.has(vif)) continue;
    leftovers.set(vif, { guest: port.fields?.guest ?? '-', bridge: port.fields?.bridge, mac: port.mac, addresses: [...(port.fields?.addresses ?? [...port.v4, ...port.v6])] });
  }
  for (const [vif, port] of leftovers) {
    // Without an inventory (no hypervisor tools) the live rules are all there is to report.
    rows.push({ ...port, vif, state: expected === undefined ? 'protected' : 'stale', ...countersFor(live, vif, ebCounts) });
  }
  return rows.sort((a, b) => a.vif.localeCompare(b.vif));
}

/**
 * A row an admin has to look at: not protected as sync would build it, or its guest sent something
 * that was dropped (`spoofed`, every from-guest reason). Drops on the way to a guest (flooded frames
 * for other guests) do not count.
 */
export const isProblem = (row: PortStatus): boolean => row.state !== 'protected' || row.spoofed.packets > 0;

/**
 * The rows `status` shows: those whose vif or guest is one of `targets` (all when none are given),
 * and only the problems when asked. A target that names no port is an error, not an empty table.
 */
export function selectRows(rows: readonly PortStatus[], targets: readonly string[], problemsOnly: boolean): PortStatus[] {
  const wanted = new Set(targets);
  const missing = targets.filter((target) => !rows.some((row) => row.vif === target || row.guest === target));
  if (missing.length) throw new VifGuardError('INVALID_INPUT', `no guest port is named ${missing.join(', ')} (a vif or a guest name; vif-guard status lists them)`);
  return rows.filter((row) => (wanted.size === 0 || wanted.has(row.vif) || wanted.has(row.guest)) && (!problemsOnly || isProblem(row)));
}

/** One line for the end of the table: how many ports are in each state, and how many guests sent something that was dropped. */
export function summaryLine(all: readonly PortStatus[], shown: number): string {
  const states = new Map<PortState, number>();
  for (const row of all) states.set(row.state, (states.get(row.state) ?? 0) + 1);
  const order: PortState[] = ['protected', 'unprotected', 'drift', 'stale', 'no-addresses'];
  const counts = order.filter((state) => states.has(state)).map((state) => `${states.get(state)} ${state}`);
  const dropping = all.filter((row) => row.spoofed.packets > 0).length;
  return `${all.length} port(s): ${counts.join(', ') || 'none'}; ${dropping} sent traffic that was dropped${shown === all.length ? '' : `; ${shown} shown`}`;
}

const label = (value: string) => value.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
const LABELS: Record<Reason, string> = {
  source4: 'source_ipv4',
  dhcpServer: 'dhcp_server',
  source6: 'source_ipv6',
  routerAdvert: 'router_advertisement',
  redirect: 'redirect',
  dhcpv6Server: 'dhcpv6_server',
  neighborTarget: 'neighbor_advert_target',
  mac: 'mac',
  ethertype: 'ethertype',
  arpMac: 'arp_mac',
  arpIp: 'arp_ip',
  notForGuest4: 'not_for_guest_ipv4',
  notForGuest6: 'not_for_guest_ipv6',
};

/** node_exporter textfile format: one counter per port and reason, plus the port's state. */
export function renderPrometheus(rows: readonly PortStatus[]): string {
  const packets = ['# HELP vif_guard_dropped_packets_total Packets vif-guard dropped, per guest port and reason, since its chain was written.', '# TYPE vif_guard_dropped_packets_total counter'];
  const bytes = ['# HELP vif_guard_dropped_bytes_total Bytes vif-guard dropped, per guest port and reason, since its chain was written.', '# TYPE vif_guard_dropped_bytes_total counter'];
  const state = ['# HELP vif_guard_port_protected 1 when the port has exactly the rules sync would build.', '# TYPE vif_guard_port_protected gauge'];
  for (const row of rows) {
    const base = `guest="${label(row.guest)}",vif="${label(row.vif)}"`;
    for (const reason of [...FROM_GUEST_REASONS, ...TO_GUEST_REASONS]) {
      packets.push(`vif_guard_dropped_packets_total{${base},reason="${LABELS[reason]}"} ${row.dropped[reason].packets}`);
      bytes.push(`vif_guard_dropped_bytes_total{${base},reason="${LABELS[reason]}"} ${row.dropped[reason].bytes}`);
    }
    state.push(`vif_guard_port_protected{${base},state="${row.state}"} ${row.state === 'protected' ? 1 : 0}`);
  }
  return `${[...packets, ...bytes, ...state].join('\n')}\n`;
}
