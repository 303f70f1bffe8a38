import type { GuestPort } from '../guest/model.js';
import { ipv4Addresses, ipv6Identity } from '../guest/model.js';
import { ipv6ToInt, type GuestAddress } from '../guest/validate.js';
import { collapse } from './bridge.js';
import type { Settings } from '../config/settings.js';
import type { ChainSpec, Rule } from './types.js';
import { portInChain, portOutChain } from './names.js';

/**
 * UDP source and destination port, as two multiport matches rather than `-m udp --sport --dport`:
 * libxtables parses udp's port options through getaddrinfo() first (a service name lookup), and
 * glibc's default AI_ADDRCONFIG then dumps every interface's addresses, each option costing a hook
 * ~8 ms on a host with 4,000 vifs. multiport parses a number as a number. The match is the same:
 * both skip non-first fragments and drop truncated headers. (One multiport match cannot hold both.)
 */
const udpPorts = (sport: number, dport: number): Rule => ['-p', 'udp', '-m', 'multiport', '--sports', String(sport), '-m', 'multiport', '--dports', String(dport)];
const DHCP_CLIENT: Rule = udpPorts(68, 67);
export const DHCP_SERVER: Rule = udpPorts(67, 68);

export type DropClass = 'src' | 'dhcps' | 'dst' | 'src6' | 'dhcp6s' | 'ra' | 'nd_target' | 'dst6' | 'blocked';

/** A port's blocklist sets (iptables backend): sources it must not receive from, destinations it must not send to. */
export interface PortIpsets {
  readonly in4: string;
  readonly in6: string;
  readonly out4: string;
  readonly out6: string;
}

/** Blocklist drops, first in a port chain: before any RETURN lets the packet through. */
function blocklistDrops(settings: Settings, ifname: string, set: string | undefined, direction: 'src' | 'dst'): Rule[] {
  if (set === undefined) return [];
  const match: Rule = ['-m', 'set', '--match-set', set, direction];
  return [...logRule(settings, 'blocked', ifname, match), [...match, '-j', 'DROP']];
}

/** LOG prefix, at most the 29 characters LOG takes: `vifg-dhcp6s:` (12) + a 15-character name + space; `vifg-nd_target:` can cut a long name short. */
export function logPrefix(dropClass: DropClass, ifname: string): string {
  return `vifg-${dropClass}:${ifname} `.slice(0, 29);
}

function logRule(settings: Settings, dropClass: DropClass, ifname: string, match: Rule = []): Rule[] {
  if (!settings.log) return [];
  return [[...match, '-m', 'limit', '--limit', `${settings.logPerMinute}/min`, '--limit-burst', String(settings.logBurst), '-j', 'LOG', '--log-prefix', logPrefix(dropClass, ifname)]];
}

/** Port metadata kept in the ruleset itself, so a hook can rebuild shared chains without reading configs. */
export function portComment(port: GuestPort): string {
  return `vif-guard port=${port.ifname} guest=${port.guest} bridge=${port.bridge ?? '-'} mac=${port.mac ?? '-'} key=${port.key ?? '-'}`;
}

export interface PortMeta {
  readonly ifname: string;
  readonly guest: string;
  readonly bridge: string | undefined;
  readonly mac: string | undefined;
  readonly key: string | undefined;
}

export function parsePortComment(comment: string): PortMeta | undefined {
  const match = /^vif-guard port=(\S+) guest=(\S+) bridge=(\S+) mac=(\S+)(?: key=(\S+))?$/.exec(comment);
  if (!match) return undefined;
  const [, ifname = '', guest = '-', bridge = '-', mac = '-', key = '-'] = match;
  return { ifname, guest, bridge: bridge === '-' ? undefined : bridge, mac: mac === '-' ? undefined : mac, key: key === '-' ? undefined : key };
}

const COMMENT = /--comment "((?:[^"\\]|\\.)*)"/;

/** The metadata vif-guard recorded in a port chain's rules (as iptables-save prints them), if any. */
export function portMetaOfRules(rules: readonly string[]): PortMeta | undefined {
  const comment = rules.map((rule) => COMMENT.exec(rule)?.[1]).find((text) => text !== undefined);
  return comment === undefined ? undefined : parsePortComment(comment.replace(/\\(.)/g, '$1'));
}

/** Whether this port gets chains at all: it has addresses, or the policy blocks unaddressed ports. */
export function isGuarded(port: GuestPort, settings: Settings): boolean {
  return port.addresses.length > 0 || settings.unaddressed === 'block';
}

const ICMP6 = (type: number): Rule => ['-p', 'ipv6-icmp', '-m', 'icmp6', '--icmpv6-type', String(type)];
export const DHCP6_SERVER: Rule = udpPorts(547, 546);
// What a guest sends from :: before it has an address: DAD neighbour solicitations, MLD reports
// during DAD (RFC 3590) and router solicitations (RFC 4861 6.3.7), all to link-scope multicast.
const UNSPECIFIED_OK = [133, 135, 143];

const NA: Rule = ICMP6(136);
/**
 * A neighbour advertisement behind extension headers (headers other than exactly the ICMPv6 one):
 * its target is no longer at bytes 48-63, where the target check looks, so it is dropped; neighbour
 * discovery never needs them. (`--soft` would mean all of the listed headers, not any.)
 */
const NA_EXTENSIONS: Rule = [...NA, '-m', 'ipv6header', '!', '--header', 'protocol'];
/** The target's offset: after the 40-byte IPv6 header and the advertisement's type, code, checksum and flags. */
const TARGET_AT = 48;
/**
 * More than this many patterns (odd prefix lengths expand) and the port may advertise nothing (see
 * naTargetRule): iptables-restore takes at most 255 arguments a line, and the LOG twin of the rule is
 * 18 plus 11 per pattern, with `-t filter` and the program's name before them.
 */
export const MAX_TARGET_PATTERNS = 20;

/**
 * The advertisement's target as byte patterns, one per own address or prefix: all of its bytes for an
 * address, the prefix's bytes for a prefix, and a prefix that does not end on a byte boundary as
 * every pattern of its next byte length (a /60 is sixteen /64s). undefined when there are too many.
 */
export function targetPatterns(addresses: readonly GuestAddress[]): string[] | undefined {
  const patterns: string[] = [];
  for (const address of collapse(addresses)) {
    const bytes = Math.ceil(address.prefix / 8);
    const spare = BigInt(bytes * 8 - address.prefix);
    const top = ipv6ToInt(address.address) >> BigInt(128 - bytes * 8);
    for (let low = 0n; low < 1n << spare; low += 1n) patterns.push((top | low).toString(16).padStart(bytes * 2, '0'));
    if (patterns.length > MAX_TARGET_PATTERNS) return undefined;
  }
  return patterns;
}

/** The patterns of the port's link-local and IPv6 addresses and prefixes; undefined past the cap. */
function ownTargets(port: GuestPort): string[] | undefined {
  return targetPatterns(ipv6Identity(port));
}

/** Whether a guarded port's IPv6 addresses need more patterns than one rule takes: on the iptables backends it may then send no neighbour advertisement. */
export function advertisesNothing(port: GuestPort, settings: Settings): boolean {
  return isGuarded(port, settings) && ownTargets(port) === undefined;
}

function advertisementWarning(port: GuestPort): string {
  return `${port.ifname} (${port.guest}): its IPv6 addresses need more than ${MAX_TARGET_PATTERNS} neighbour-advertisement patterns, so on the iptables backend it may send none and its IPv6 neighbours cannot reach it; give it a covering prefix (a /64 or /56) or use the nftables backend`;
}

/**
 * What hooks and sync log for ports that may advertise nothing, after `engine` applied them: only the
 * iptables engine enforces the check with byte patterns (the bridge table's sets take any number;
 * doctor lists such guests too).
 */
export function advertisementWarnings(engine: string, ports: readonly GuestPort[], settings: Settings): string[] {
  return engine === 'iptables' ? ports.filter((port) => advertisesNothing(port, settings)).map(advertisementWarning) : [];
}

/**
 * A neighbour advertisement whose target is none of the port's own addresses (IPv6's forged ARP
 * reply): one string match per pattern at the target's offset, all negated, so the rule matches only
 * when every one fails. ip6tables has no field for the target; xt_string with --from/--to pins each
 * pattern to exactly those bytes. A port whose prefixes expand past MAX_TARGET_PATTERNS gets the bare
 * match: it may advertise nothing, failing closed.
 */
function naTargetRule(port: GuestPort): Rule {
  const patterns = ownTargets(port) ?? [];
  return [...NA, ...patterns.flatMap((hex) => ['-m', 'string', '!', '--hex-string', `|${hex}|`, '--algo', 'bm', '--from', String(TARGET_AT), '--to', String(TARGET_AT + hex.length / 2)])];
}

function ipv6Sources(port: GuestPort): string[] {
  const cidrs = ipv6Identity(port).map((address) => address.cidr);
  // The link-local once, even when it is also configured.
  return port.mac ? cidrs.filter((cidr, i) => i === 0 || cidr !== cidrs[0]) : cidrs;
}

/**
 * IPv6 from the guest: router advertisements, redirects, DHCPv6 server replies and neighbour
 * advertisements for addresses not its own dropped first; `::` only for DAD, MLD and RS; then its
 * MAC-derived link-local and its own addresses.
 */
export function buildPortIn6Chain(port: GuestPort, settings: Settings, sets?: PortIpsets): ChainSpec {
  const naTarget = naTargetRule(port);
  const rules: Rule[] = [
    ...blocklistDrops(settings, port.ifname, sets?.out6, 'dst'),
    ...logRule(settings, 'ra', port.ifname, ICMP6(134)),
    [...ICMP6(134), '-j', 'DROP'],
    [...ICMP6(137), '-j', 'DROP'],
    ...logRule(settings, 'dhcp6s', port.ifname, DHCP6_SERVER),
    [...DHCP6_SERVER, '-j', 'DROP'],
    ...logRule(settings, 'nd_target', port.ifname, NA_EXTENSIONS),
    [...NA_EXTENSIONS, '-j', 'DROP'],
    ...logRule(settings, 'nd_target', port.ifname, naTarget),
    [...naTarget, '-j', 'DROP'],
    ...UNSPECIFIED_OK.map((type): Rule => ['-s', '::/128', '-d', 'ff02::/16', ...ICMP6(type), '-j', 'RETURN']),
    ...ipv6Sources(port).map((cidr): Rule => ['-s', cidr, '-j', 'RETURN']),
    ...logRule(settings, 'src6', port.ifname),
    ['-m', 'comment', '--comment', portComment(port), '-j', 'DROP'],
  ];
  return { name: portInChain(port.ifname), rules };
}

/** IPv6 to the guest: its addresses, its link-local, and multicast (neighbour discovery, RAs, DHCPv6). */
export function buildPortOut6Chain(port: GuestPort, settings: Settings, sets?: PortIpsets): ChainSpec {
  const rules: Rule[] = [
    ...blocklistDrops(settings, port.ifname, sets?.in6, 'src'),
    ...ipv6Sources(port).map((cidr): Rule => ['-d', cidr, '-j', 'RETURN']),
    ['-d', 'ff00::/8', '-j', 'RETURN'],
    ...logRule(settings, 'dst6', port.ifname),
    ['-j', 'DROP'],
  ];
  return { name: portOutChain(port.ifname), rules };
}

/** Traffic from the guest, bridged or to dom0: only its own sources and DHCP requests; never DHCP offers. */
export function buildPortInChain(port: GuestPort, settings: Settings, sets?: PortIpsets): ChainSpec {
  const rules: Rule[] = [
    ...blocklistDrops(settings, port.ifname, sets?.out4, 'dst'),
    ...logRule(settings, 'dhcps', port.ifname, DHCP_SERVER),
    [...DHCP_SERVER, '-j', 'DROP'],
    ...ipv4Addresses(port).map((address): Rule => ['-s', address.cidr, '-j', 'RETURN']),
    [...DHCP_CLIENT, '-j', 'RETURN'],
    ...logRule(settings, 'src', port.ifname),
    ['-m', 'comment', '--comment', portComment(port), '-j', 'DROP'],
  ];
  return { name: portInChain(port.ifname), rules };
}

/** Traffic bridged to the guest: its own addresses, broadcast, multicast and DHCP replies. */
export function buildPortOutChain(port: GuestPort, settings: Settings, sets?: PortIpsets): ChainSpec {
  const rules: Rule[] = [
    ...blocklistDrops(settings, port.ifname, sets?.in4, 'src'),
    ...ipv4Addresses(port).map((address): Rule => ['-d', address.cidr, '-j', 'RETURN']),
    ['-m', 'pkttype', '--pkt-type', 'broadcast', '-j', 'RETURN'],
    ['-d', '224.0.0.0/4', '-j', 'RETURN'],
    [...DHCP_SERVER, '-j', 'RETURN'],
    ...logRule(settings, 'dst', port.ifname),
    ['-j', 'DROP'],
  ];
  return { name: portOutChain(port.ifname), rules };
}
