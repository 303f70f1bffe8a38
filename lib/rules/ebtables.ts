import type { Settings } from '../config/settings.js';
import { shortDigest } from '../digest.js';
import { VifGuardError } from '../errors.js';
import { dispatchTree, type DispatchEntry } from './dispatch.js';
import type { BridgePort, Rule } from './types.js';

/*
 * Layer 2 in ebtables, for kernels that cannot load the bridge table (nf_tables missing, or older
 * than 5.6): OpenVZ 7's 3.10, Xen dom0s on 4.x. The same checks as the bridge table's layer-2 mode
 * (rules/bridge.ts): source MAC, ARP sender MAC and IP, ethertypes.
 *
 * They live in the `nat` table's PREROUTING, not `filter`: the bridge learns a frame's source MAC
 * (br_handle_frame_finish) after PREROUTING and before filter FORWARD, so a forged frame dropped in
 * filter would still have moved a neighbour's MAC to the attacker's port. `nat` accepts DROP.
 *
 * Ports are reached through a radix tree of `-i prefix+` chains (the iptables backend's dispatch,
 * rules/dispatch.ts), so a frame walks a few short chains whatever the number of guests. A port's
 * chain is named after a digest of its rules: a chain of that name with that many rules is that port,
 * configured so, and is left alone (its counters too) when anything else changes.
 */

export const EB_TABLE = 'nat';
export const EB_ROOT = 'vif-guard-l2';
export const EB_JUMP: Rule = ['-j', EB_ROOT];
const PORT_PREFIX = 'vgl2-p-';
const DISPATCH_PREFIX = 'vgl2-d-';
/** EBT_CHAIN_MAXNAMELEN (32) less the NUL: `vgl2-p-` + a 15-character name + `-` + 6 hex digits is 29. */
export const EB_CHAIN_MAX = 31;

export type EbClass = 'mac' | 'ethertype' | 'arp_mac' | 'arp_ip';

export interface EbChain {
  readonly name: string;
  readonly rules: readonly Rule[];
}

// ebtables takes ethertypes as numbers on every version; nft's names (vif-guard.conf) mapped here.
const ETHERTYPE_NUMBERS: Readonly<Record<string, string>> = {
  vlan: '0x8100',
  '8021q': '0x8100',
  '8021ad': '0x88a8',
  rarp: '0x8035',
  lldp: '0x88cc',
  'pppoe-discovery': '0x8863',
  'pppoe-session': '0x8864',
  'mpls-uc': '0x8847',
  'mpls-mc': '0x8848',
};
const IPV4 = '0x0800';
const ARP = '0x0806';
const IPV6 = '0x86dd';

export function ebEthertype(name: string): string {
  return ETHERTYPE_NUMBERS[name] ?? name.toLowerCase();
}

/** A logged drop: a rate-limited LOG (CONTINUE) then the DROP that counts. ebt_log prints IN=<port> itself. */
function drop(settings: Settings, cls: EbClass, match: Rule): Rule[] {
  const log: Rule[] = settings.log
    ? [[...match, '--limit', `${settings.logPerMinute}/minute`, '--limit-burst', String(settings.logBurst), '--log-level', 'warning', '--log-prefix', `vifg-${cls}:`, '-j', 'CONTINUE']]
    : [];
  return [...log, [...match, '-j', 'DROP']];
}

/** One guarded port's chain: its MAC, then IPv4/IPv6 on to the IP checks, ARP as itself, other ethertypes dropped. */
export function ebPortChain(port: BridgePort, settings: Settings): EbChain {
  const mac = port.mac;
  const rules: Rule[] = [
    ...(mac ? drop(settings, 'mac', ['-s', '!', mac]) : []),
    ['-p', IPV4, '-j', 'RETURN'],
    ['-p', IPV6, '-j', 'RETURN'],
    ...(mac ? drop(settings, 'arp_mac', ['-p', ARP, '--arp-mac-src', '!', mac]) : []),
    // Sender IP 0.0.0.0 is an address probe (RFC 5227); anything else must be the guest's own.
    ['-p', ARP, '--arp-ip-src', '0.0.0.0', '-j', 'RETURN'],
    ...port.v4.map((address): Rule => ['-p', ARP, '--arp-ip-src', address, '-j', 'RETURN']),
    ...drop(settings, 'arp_ip', ['-p', ARP]),
    ...[...new Set(settings.extraEthertypes.map(ebEthertype))].map((type): Rule => ['-p', type, '-j', 'RETURN']),
    ...drop(settings, 'ethertype', []),
  ];
  return { name: `${PORT_PREFIX}${port.ifname}-${shortDigest(renderEbRules(rules).join('\n')).slice(0, 6)}`, rules };
}

/** The port a port chain's name belongs to. */
export function portOfEbChain(name: string): string | undefined {
  return name.startsWith(PORT_PREFIX) ? /^(.+)-[0-9a-f]{6}$/.exec(name.slice(PORT_PREFIX.length))?.[1] : undefined;
}

export function isEbChain(name: string): boolean {
  return name === EB_ROOT || name.startsWith(PORT_PREFIX) || name.startsWith(DISPATCH_PREFIX);
}

export function isEbPortChain(name: string): boolean {
  return name.startsWith(PORT_PREFIX);
}

/** Every chain vif-guard owns in the nat table for these ports: root, dispatch, ports; none when there are no ports. */
export function buildEbtables(ports: readonly BridgePort[], settings: Settings): EbChain[] {
  if (ports.length === 0) return [];
  const chains = new Map(ports.map((port) => [port.ifname, ebPortChain(port, settings)]));
  const dispatch = [...dispatchTree([...chains.keys()])].map(([prefix, entries]): EbChain => ({
    name: ebDispatchChain(prefix),
    rules: entries.map((entry) => ebDispatchRule(entry, 'port' in entry ? chains.get(entry.port)?.name ?? '' : '')),
  }));
  return [...dispatch, ...chains.values()];
}

/** The chain of a dispatch node (`''` is the root). */
export function ebDispatchChain(prefix: string): string {
  return prefix === '' ? EB_ROOT : `${DISPATCH_PREFIX}${prefix}`;
}

/** One dispatch rule: to a port's chain (named `portChain`), or to a longer prefix's node. */
export function ebDispatchRule(entry: DispatchEntry, portChain: string): Rule {
  return 'port' in entry ? ['-i', entry.port, '-j', portChain] : ['-i', `${entry.branch}+`, '-j', ebDispatchChain(entry.branch)];
}

/** ebtables-restore lines take no quoting: every word here is validated and has no space or quote. */
export function renderEbRules(rules: readonly Rule[]): string[] {
  return rules.map((rule) => {
    if (rule.some((word) => word === '' || /[\s"'\\]/.test(word))) throw new VifGuardError('INTERNAL', `an ebtables word with a space or quote: ${rule.join(' ')}`);
    return rule.join(' ');
  });
}

/** What the port chains depend on besides each port: keys the iptables cache when layer 2 is in ebtables. */
export function ebLayoutDigest(settings: Settings): string {
  return `eb-${shortDigest(JSON.stringify([settings.log, settings.logPerMinute, settings.logBurst, settings.extraEthertypes]))}`;
}
