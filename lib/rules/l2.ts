import { createHash } from 'node:crypto';
import type { Settings } from '../config/settings.js';
import type { GuestAddress } from '../guest/validate.js';
import type { GuestL2Spec } from './types.js';

/*
 * Layer 2 lives in nft's bridge family: it sees the bridge port of every frame (and VLAN-tagged
 * frames, which br_netfilter does not pass to iptables by default), dispatches per port with one
 * `iifname vmap` lookup, and commits as one transaction. ebtables would need a linear jump list.
 */

/** nft identifiers cannot hold `-`: `_` becomes `__` and `-` becomes `_h`, so the mapping is reversible. */
export function encodeIfname(ifname: string): string {
  return ifname.replace(/_/g, '__').replace(/-/g, '_h');
}

/**
 * A guest's chain is named after its port and the digest of its rules (`g_vif1.0_3f2a...`), so a
 * hook can tell from the chain names alone, without nft listing every rule of every guest (0.8 s at
 * 1,000 guests), which chains are current.
 */
export function l2Chain(ifname: string, digest: string): string {
  return `g_${encodeIfname(ifname)}_${digest}`;
}

export function ifnameOfL2Chain(chain: string): string | undefined {
  const match = /^g_(.*)_[0-9a-f]{12}$/.exec(chain);
  return match?.[1]?.replace(/_(_|h)/g, (_all, c: string) => (c === '_' ? '_' : '-'));
}

export type L2Class = 'mac' | 'l2' | 'arp-mac' | 'arp-ip';

const ETHERTYPES = ['ip', 'arp', 'ip6'];

/** The rules of one guest's chain; every rule carries `vg:<class>` so status can read its counter. */
export function buildGuestL2(ifname: string, mac: string | undefined, ipv4: readonly GuestAddress[], settings: Settings): GuestL2Spec {
  const checks: { cls: L2Class; match: string }[] = [];
  if (mac) checks.push({ cls: 'mac', match: `ether saddr != ${mac}` });
  const types = [...ETHERTYPES, ...settings.extraEthertypes];
  checks.push({ cls: 'l2', match: `ether type != { ${types.join(', ')} }` });
  if (mac) checks.push({ cls: 'arp-mac', match: `ether type arp arp saddr ether != ${mac}` });
  // Sender IP 0.0.0.0 is an address probe (RFC 5227); anything else must be the guest's own.
  const senders = ['0.0.0.0', ...ipv4.map((address) => (address.prefix === 32 ? address.address : address.cidr))];
  checks.push({ cls: 'arp-ip', match: `ether type arp arp saddr ip != { ${senders.join(', ')} }` });
  const plain: string[] = [];
  for (const { cls, match } of checks) {
    if (settings.log) plain.push(`${match} limit rate ${settings.logPerMinute}/minute burst ${settings.logBurst} packets log prefix "vifg-${cls}:${ifname} " level warn|${cls}-log`);
    plain.push(`${match} counter drop|${cls}`);
  }
  const digest = createHash('sha256').update(plain.join('\n')).digest('hex').slice(0, 12);
  const rules = plain.map((line) => {
    const bar = line.lastIndexOf('|');
    return `${line.slice(0, bar)} comment "vg:${line.slice(bar + 1)}"`;
  });
  return { ifname, chain: l2Chain(ifname, digest), rules };
}
