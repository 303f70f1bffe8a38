import { isIPv6 } from 'node:net';
import { invalid, type Origin } from '../errors.js';

/** Linux IFNAMSIZ is 16 with the NUL; we also refuse anything iptables would read as an option or wildcard. */
const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

export function parseIfname(value: string, what: string, origin: Origin): string {
  if (!IFNAME.test(value) || value === '.' || value === '..') {
    throw invalid(what, 'an interface name of 1-15 characters from [A-Za-z0-9_.-], not starting with `-` or `.`', value, origin);
  }
  return value;
}

/** Xen domain names as vif-guard accepts them (they end up in rule comments and log lines). */
const GUEST_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

export function isGuestName(value: string): boolean {
  return GUEST_NAME.test(value);
}

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** Canonical lower-case MAC. Multicast and all-zero addresses cannot be a guest's source MAC. */
export function parseMac(value: string, origin: Origin): string {
  if (!MAC.test(value)) throw invalid('mac', 'a MAC address like 00:16:3e:7c:1f:6e', value, origin);
  const mac = value.toLowerCase();
  const firstOctet = parseInt(mac.slice(0, 2), 16);
  if ((firstOctet & 1) === 1 || mac === '00:00:00:00:00:00') {
    throw invalid('mac', 'a unicast, non-zero MAC address', value, origin);
  }
  return mac;
}

export interface GuestAddress {
  readonly family: 4 | 6;
  /** Network address in canonical text, host bits cleared. */
  readonly address: string;
  readonly prefix: number;
  /** `address/prefix`, exactly as iptables-save prints it. */
  readonly cidr: string;
}

/** A dotted quad (already validated) as a number; a character loop, as blocklists convert thousands. */
export function ipv4ToInt(text: string): number {
  let value = 0;
  let octet = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      value = value * 256 + octet;
      octet = 0;
    } else octet = octet * 10 + (c - 48);
  }
  return value * 256 + octet;
}

export function intToIpv4(value: number): string {
  return `${Math.floor(value / 16777216)}.${Math.floor(value / 65536) % 256}.${Math.floor(value / 256) % 256}.${value % 256}`;
}

/** The eight 16-bit groups of an IPv6 address. */
export function expandIpv6(text: string): number[] {
  let work = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(work);
  if (v4?.[1]) {
    const n = ipv4ToInt(v4[1]);
    work = `${work.slice(0, -v4[1].length)}${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`;
  }
  const [head = '', tail] = work.split('::');
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array(8 - headParts.length - tailParts.length).fill('0');
  return [...headParts, ...fill, ...tailParts].map((part) => parseInt(part, 16));
}

export function compressIpv6(groups: number[]): string {
  // RFC 5952: longest run of two or more zero groups becomes "::", first one on a tie.
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLength && j - i >= 2) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

const EXPECTED_ADDRESS = 'an IPv4/IPv6 address or CIDR';

/**
 * A dotted quad as node's isIPv4 accepts it (four decimal octets 0-255, no leading zeros) as a
 * number, or -1: one pass over the characters, as a zone file holds thousands.
 */
export function parseIpv4(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots += 1;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      digits += 1;
      if (octet > 255) return -1;
    } else return -1;
  }
  return dots === 3 && digits > 0 ? value * 256 + octet : -1;
}

/** The network an address or CIDR names (host bits cleared, canonical text), or undefined when it is neither. */
function network(value: string): GuestAddress | undefined {
  const slash = value.indexOf('/');
  const host = slash < 0 ? value : value.slice(0, slash);
  const prefixText = slash < 0 ? undefined : value.slice(slash + 1);
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const v4 = parseIpv4(host);
  if (v4 >= 0) {
    const prefix = prefixText === undefined ? 32 : Number(prefixText);
    if (prefix > 32) return undefined;
    const size = 2 ** (32 - prefix);
    const start = Math.floor(v4 / size) * size;
    // Without leading zeros a valid quad is already canonical.
    const address = start === v4 ? host : intToIpv4(start);
    return { family: 4, address, prefix, cidr: `${address}/${prefix}` };
  }
  if (isIPv6(host) && !host.includes('%')) {
    const prefix = prefixText === undefined ? 128 : Number(prefixText);
    if (prefix > 128) return undefined;
    const masked = expandIpv6(host.toLowerCase()).map((group, i) => {
      const bitsInGroup = Math.max(0, Math.min(16, prefix - i * 16));
      return bitsInGroup === 16 ? group : group & (0xffff << (16 - bitsInGroup)) & 0xffff;
    });
    const address = compressIpv6(masked);
    return { family: 6, address, prefix, cidr: `${address}/${prefix}` };
  }
  return undefined;
}

/** One `ip=` entry: an address or CIDR, host bits cleared so the rule text matches what iptables-save prints. */
export function parseAddress(value: string, origin: Origin): GuestAddress {
  const net = network(value);
  if (!net) throw invalid('ip', EXPECTED_ADDRESS, value, origin);
  if (net.family === 4) {
    if (net.prefix < 8) throw invalid('ip', 'an IPv4 CIDR no wider than /8 (a wider one would let the guest spoof most of the Internet)', value, origin);
    const first = Number(net.address.slice(0, net.address.indexOf('.')));
    // 0/8 ("this network"), 127/8 (loopback), 224/4 (multicast) and 240/4 (reserved, broadcast)
    // are never a guest's own source; 0.0.0.0 is DHCP's and is allowed separately.
    if (first === 0 || first === 127 || first >= 224) throw invalid('ip', 'a unicast IPv4 address (not 0/8, loopback, multicast or broadcast)', value, origin);
    return net;
  }
  if (net.prefix < 16) throw invalid('ip', 'an IPv6 CIDR no wider than /16', value, origin);
  // :: and ::1 are never a source a guest may own; ff00::/8 is multicast.
  if ((expandIpv6(net.address)[0] ?? 0) >= 0xff00 || net.address === '::' || net.address === '::1') throw invalid('ip', 'a unicast IPv6 address (not ::, ::1 or multicast)', value, origin);
  return net;
}

/** The xenstore / vifspec `ip` value: space-separated, as the stock scripts read it (`for addr in $ip`). */
export function parseAddressList(value: string, origin: Origin): GuestAddress[] {
  const seen = new Set<string>();
  const result: GuestAddress[] = [];
  for (const word of value.split(/[ \t]+/).filter(Boolean)) {
    const address = parseAddress(word, origin);
    if (seen.has(address.cidr)) continue;
    seen.add(address.cidr);
    result.push(address);
  }
  return result;
}

/** An IPv6 address as a 128-bit number. */
export function ipv6ToInt(address: string): bigint {
  return expandIpv6(address).reduce((acc, group) => (acc << 16n) | BigInt(group), 0n);
}

/** The first and last address of a CIDR, as numbers (BigInt, so IPv6 fits). */
export function addressRange(address: GuestAddress): [bigint, bigint] {
  const bits = address.family === 4 ? 32 : 128;
  const start = address.family === 4 ? BigInt(ipv4ToInt(address.address)) : ipv6ToInt(address.address);
  return [start, start + (1n << BigInt(bits - address.prefix)) - 1n];
}

/**
 * A prefix to block (zone files, `--cidr`): any IPv4/IPv6 CIDR but /0, host bits cleared. Unlike a
 * guest's own address, private, multicast or wide ranges are legitimate things to block.
 */
export function parseBlockPrefix(value: string, origin: Origin): GuestAddress {
  const net = network(value);
  if (!net || net.prefix < 1) throw invalid('prefix', 'an IPv4/IPv6 address or CIDR (not /0)', value, origin);
  return net;
}
