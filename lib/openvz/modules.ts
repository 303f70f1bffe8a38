import { VifGuardError } from '../errors.js';

/*
 * vzctl's iptables module tokens (vzctl src/lib/iptables.c, include/linux/vzcalluser.h; reference
 * openvz.md 3.1). Bits are kernel ABI. Row order is vzctl's table order, which is also its save order.
 */
export interface ModuleToken {
  readonly token: string;
  readonly bit: number;
  /** Tokens this one implies (vzctl's mask includes their bits). */
  readonly deps: readonly string[];
  /** Host kernel modules to load for it on a 2.6.32+ / 3.x+ kernel (modern names). */
  readonly hostModules: readonly string[];
}

const T = (token: string, bit: number, deps: string[], hostModules: string[]): ModuleToken => ({ token, bit, deps, hostModules });

export const MODULE_TABLE: readonly ModuleToken[] = [
  T('ip_tables', 0, [], ['ip_tables']),
  T('iptable_filter', 1, ['ip_tables'], ['iptable_filter']),
  T('iptable_mangle', 2, ['ip_tables'], ['iptable_mangle']),
  T('ipt_limit', 3, ['ip_tables'], ['xt_limit']),
  T('ipt_multiport', 4, ['ip_tables'], ['xt_multiport']),
  T('ipt_tos', 5, ['ip_tables'], ['xt_dscp']),
  T('ipt_TOS', 6, ['ip_tables'], ['xt_DSCP']),
  T('ipt_REJECT', 7, ['ip_tables'], ['ipt_REJECT']),
  T('ipt_TCPMSS', 8, ['ip_tables'], ['xt_TCPMSS']),
  T('ipt_tcpmss', 9, ['ip_tables'], ['xt_tcpmss']),
  T('ipt_ttl', 10, ['ip_tables'], ['xt_hl']),
  T('ipt_LOG', 11, ['ip_tables'], ['xt_LOG']),
  T('ipt_length', 12, ['ip_tables'], ['xt_length']),
  T('ip_conntrack', 14, ['ip_tables'], ['nf_conntrack']),
  T('ip_conntrack_ftp', 15, ['ip_tables', 'ip_conntrack'], ['nf_conntrack_ftp']),
  T('ip_conntrack_irc', 16, ['ip_tables', 'ip_conntrack'], ['nf_conntrack_irc']),
  T('ipt_conntrack', 17, ['ip_tables', 'ip_conntrack'], ['xt_conntrack']),
  T('ipt_state', 18, ['ip_tables', 'ip_conntrack'], ['xt_state']),
  T('ipt_helper', 19, ['ip_tables', 'ip_conntrack'], ['xt_helper']),
  T('iptable_nat', 20, ['ip_tables', 'ip_conntrack'], ['iptable_nat']),
  T('ip_nat_ftp', 21, ['ip_tables', 'ip_conntrack', 'ip_conntrack_ftp', 'iptable_nat'], ['nf_nat_ftp']),
  T('ip_nat_irc', 22, ['ip_tables', 'ip_conntrack', 'ip_conntrack_irc', 'iptable_nat'], ['nf_nat_irc']),
  T('ipt_REDIRECT', 23, ['ip_tables', 'ip_conntrack', 'iptable_nat'], ['xt_REDIRECT']),
  T('xt_mac', 25, ['ip_tables'], ['xt_mac']),
  T('ipt_recent', 31, ['ip_tables'], ['xt_recent']),
  T('ipt_owner', 24, ['ip_tables'], ['xt_owner']),
];

const BY_TOKEN = new Map(MODULE_TABLE.map((row) => [row.token, row]));

/** The bits of one token: its own and its dependencies' (vzctl's "mask" column). */
export function maskOf(token: string): bigint {
  const row = BY_TOKEN.get(token);
  if (!row) return 0n;
  return [row.token, ...row.deps].reduce((mask, name) => mask | (1n << BigInt(BY_TOKEN.get(name)?.bit ?? 0)), 0n);
}

export const VE_IP_DEFAULT = 0x17bfn;

/** vzctl >= 4.7 NETFILTER modes (openvz.md 3.1). */
export const NETFILTER_MODES = {
  disabled: 0n,
  stateless: 0x1c000007n,
  stateful: 0x5c01c007n,
  full: 0xffffffffffffffffn,
} as const;
export type NetfilterMode = keyof typeof NETFILTER_MODES;

/** The names admins actually type, mapped to vzctl's tokens (openvz.md 5, last table). */
const ALIASES: Record<string, string> = {
  filter: 'iptable_filter', mangle: 'iptable_mangle', nat: 'iptable_nat', tables: 'ip_tables', iptables: 'ip_tables',
  limit: 'ipt_limit', xt_limit: 'ipt_limit', multiport: 'ipt_multiport', xt_multiport: 'ipt_multiport',
  tos: 'ipt_tos', TOS: 'ipt_TOS', REJECT: 'ipt_REJECT', reject: 'ipt_REJECT', TCPMSS: 'ipt_TCPMSS', tcpmss: 'ipt_tcpmss',
  xt_TCPMSS: 'ipt_TCPMSS', xt_tcpmss: 'ipt_tcpmss', ttl: 'ipt_ttl', xt_hl: 'ipt_ttl', LOG: 'ipt_LOG', log: 'ipt_LOG', xt_LOG: 'ipt_LOG',
  length: 'ipt_length', xt_length: 'ipt_length', conntrack: 'ip_conntrack', nf_conntrack: 'ip_conntrack', nf_conntrack_ipv4: 'ip_conntrack',
  ftp: 'ip_conntrack_ftp', nf_conntrack_ftp: 'ip_conntrack_ftp', irc: 'ip_conntrack_irc', nf_conntrack_irc: 'ip_conntrack_irc',
  xt_conntrack: 'ipt_conntrack', state: 'ipt_state', xt_state: 'ipt_state', helper: 'ipt_helper', xt_helper: 'ipt_helper',
  nf_nat: 'iptable_nat', MASQUERADE: 'iptable_nat', ipt_MASQUERADE: 'iptable_nat', SNAT: 'iptable_nat', DNAT: 'iptable_nat',
  nf_nat_ftp: 'ip_nat_ftp', nf_nat_irc: 'ip_nat_irc', REDIRECT: 'ipt_REDIRECT', xt_REDIRECT: 'ipt_REDIRECT',
  mac: 'xt_mac', ipt_mac: 'xt_mac', recent: 'ipt_recent', xt_recent: 'ipt_recent', owner: 'ipt_owner', xt_owner: 'ipt_owner',
};

/** A token from what an admin typed, or an error listing what is valid. */
export function resolveToken(name: string): string {
  if (BY_TOKEN.has(name)) return name;
  const own = (key: string) => (Object.hasOwn(ALIASES, key) ? ALIASES[key] : undefined);
  const alias = own(name) ?? own(name.toLowerCase());
  if (alias) return alias;
  throw new VifGuardError('INVALID_INPUT', `unknown iptables module \`${name}\`: valid names are ${MODULE_TABLE.map((row) => row.token).join(', ')} (or recent, state, conntrack, nat, filter, ...)`);
}

export function maskOfTokens(tokens: readonly string[]): bigint {
  return tokens.reduce((mask, token) => mask | maskOf(token), 0n);
}

/** Every token whose bit is set, in table order: what vzctl writes. */
export function tokensOfMask(mask: bigint): string[] {
  return MODULE_TABLE.filter((row) => (mask >> BigInt(row.bit)) & 1n).map((row) => row.token);
}

/** vzctl's saved form (store_iptables): each token followed by one space, in double quotes. */
export function renderSavedIptables(mask: bigint): string {
  return `IPTABLES="${tokensOfMask(mask).map((token) => `${token} `).join('')}"`;
}

/** Remove tokens and everything that depends on them (deny ip_conntrack also removes ipt_state). */
export function withoutTokens(mask: bigint, tokens: readonly string[]): bigint {
  let result = mask;
  for (const token of tokens) {
    for (const row of MODULE_TABLE) {
      if (row.token === token || row.deps.includes(token)) result &= ~(1n << BigInt(row.bit));
    }
  }
  return result;
}

/** The NETFILTER mode whose mask, restricted to the token bits, equals this one, if any. */
export function modeFor(mask: bigint): NetfilterMode | undefined {
  const tokenBits = MODULE_TABLE.reduce((all, row) => all | (1n << BigInt(row.bit)), 0n);
  return (Object.keys(NETFILTER_MODES) as NetfilterMode[]).find((mode) => (NETFILTER_MODES[mode] & tokenBits) === (mask & tokenBits));
}

export function hostModulesFor(mask: bigint): string[] {
  return [...new Set(tokensOfMask(mask).flatMap((token) => BY_TOKEN.get(token)?.hostModules ?? []))];
}
