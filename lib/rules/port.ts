import type { GuestPort } from '../guest/model.js';
import { ipv4Addresses } from '../guest/model.js';
import type { Settings } from '../config/settings.js';
import type { ChainSpec, Rule } from './types.js';
import { portInChain, portOutChain } from './names.js';

const DHCP_CLIENT: Rule = ['-p', 'udp', '-m', 'udp', '--sport', '68', '--dport', '67'];
const DHCP_SERVER: Rule = ['-p', 'udp', '-m', 'udp', '--sport', '67', '--dport', '68'];

export type DropClass = 'src' | 'dhcps' | 'dst';

/** LOG prefix, at most 29 characters: `vifg-dhcps:` (11) + a 15-character name + space. */
export function logPrefix(dropClass: DropClass, ifname: string): string {
  return `vifg-${dropClass}:${ifname} `;
}

function logRule(settings: Settings, dropClass: DropClass, ifname: string, match: Rule = []): Rule[] {
  if (!settings.log) return [];
  return [[...match, '-m', 'limit', '--limit', `${settings.logPerMinute}/min`, '--limit-burst', String(settings.logBurst), '-j', 'LOG', '--log-prefix', logPrefix(dropClass, ifname)]];
}

/** Port metadata kept in the ruleset itself, so a hook can rebuild shared chains without reading configs. */
export function portComment(port: GuestPort): string {
  return `vif-guard port=${port.ifname} guest=${port.guest} bridge=${port.bridge ?? '-'} mac=${port.mac ?? '-'}`;
}

export interface PortMeta {
  readonly ifname: string;
  readonly guest: string;
  readonly bridge: string | undefined;
  readonly mac: string | undefined;
}

export function parsePortComment(comment: string): PortMeta | undefined {
  const match = /^vif-guard port=(\S+) guest=(\S+) bridge=(\S+) mac=(\S+)$/.exec(comment);
  if (!match) return undefined;
  const [, ifname = '', guest = '-', bridge = '-', mac = '-'] = match;
  return { ifname, guest, bridge: bridge === '-' ? undefined : bridge, mac: mac === '-' ? undefined : mac };
}

/** Whether this port gets chains at all: it has IPv4 addresses, or the policy blocks unaddressed ports. */
export function isGuarded(port: GuestPort, settings: Settings): boolean {
  return ipv4Addresses(port).length > 0 || settings.unaddressed === 'block';
}

/** Traffic from the guest, bridged or to dom0: only its own sources and DHCP requests; never DHCP offers. */
export function buildPortInChain(port: GuestPort, settings: Settings): ChainSpec {
  const rules: Rule[] = [
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
export function buildPortOutChain(port: GuestPort, settings: Settings): ChainSpec {
  const rules: Rule[] = [
    ...ipv4Addresses(port).map((address): Rule => ['-d', address.cidr, '-j', 'RETURN']),
    ['-m', 'pkttype', '--pkt-type', 'broadcast', '-j', 'RETURN'],
    ['-d', '224.0.0.0/4', '-j', 'RETURN'],
    [...DHCP_SERVER, '-j', 'RETURN'],
    ...logRule(settings, 'dst', port.ifname),
    ['-j', 'DROP'],
  ];
  return { name: portOutChain(port.ifname), rules };
}
