import { expandIpv6 } from '../guest/validate.js';

/*
 * Hand-built Ethernet frames for the demo and the tests: the attacks a hostile guest can send
 * (forged MAC, ARP, IPv6 router advertisements, VLAN tags) need raw frames, not sockets.
 */

const macBytes = (mac: string): number[] => mac.split(':').map((hex) => parseInt(hex, 16));
const ipv4Bytes = (ip: string): number[] => ip.split('.').map(Number);
const ipv6Bytes = (ip: string): number[] => expandIpv6(ip.toLowerCase()).flatMap((group) => [group >> 8, group & 0xff]);
const u16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];
const u32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

export function checksum(bytes: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ethernet(dst: string, src: string, ethertype: number, payload: readonly number[], vlan?: number): number[] {
  const tag = vlan === undefined ? [] : [...u16(0x8100), ...u16(vlan & 0x0fff)];
  return [...macBytes(dst), ...macBytes(src), ...tag, ...u16(ethertype), ...payload];
}

export function arp(op: 'request' | 'reply', senderMac: string, senderIp: string, targetMac: string, targetIp: string): number[] {
  return [...u16(1), ...u16(0x0800), 6, 4, ...u16(op === 'request' ? 1 : 2), ...macBytes(senderMac), ...ipv4Bytes(senderIp), ...macBytes(targetMac), ...ipv4Bytes(targetIp)];
}

export function ipv4Udp(src: string, dst: string, sport: number, dport: number, data: string): number[] {
  const body = [...Buffer.from(data)];
  const udp = [...u16(sport), ...u16(dport), ...u16(8 + body.length), 0, 0, ...body];
  const header = [0x45, 0, ...u16(20 + udp.length), ...u16(0x1234), 0, 0, 64, 17, 0, 0, ...ipv4Bytes(src), ...ipv4Bytes(dst)];
  const sum = checksum(header);
  header[10] = sum >> 8;
  header[11] = sum & 0xff;
  return [...header, ...udp];
}

function ipv6(src: string, dst: string, next: number, payload: number[], checksumAt: number): number[] {
  const pseudo = [...ipv6Bytes(src), ...ipv6Bytes(dst), ...u32(payload.length), 0, 0, 0, next];
  const sum = checksum([...pseudo, ...payload]) || 0xffff;
  payload[checksumAt] = sum >> 8;
  payload[checksumAt + 1] = sum & 0xff;
  return [0x60, 0, 0, 0, ...u16(payload.length), next, 255, ...ipv6Bytes(src), ...ipv6Bytes(dst), ...payload];
}

export function ipv6Udp(src: string, dst: string, sport: number, dport: number, data: string): number[] {
  const body = [...Buffer.from(data)];
  return ipv6(src, dst, 17, [...u16(sport), ...u16(dport), ...u16(8 + body.length), 0, 0, ...body], 6);
}

/** ICMPv6 router advertisement announcing a default route and an autoconfiguration prefix. */
export function routerAdvertisement(src: string, routerMac: string, prefix: string): number[] {
  const prefixInfo = [3, 4, 64, 0xc0, ...u32(86400), ...u32(14400), 0, 0, 0, 0, ...ipv6Bytes(prefix)];
  const sourceLinkLayer = [1, 1, ...macBytes(routerMac)];
  const ra = [134, 0, 0, 0, 64, 0, ...u16(1800), ...u32(0), ...u32(0), ...sourceLinkLayer, ...prefixInfo];
  return ipv6(src, 'ff02::1', 58, ra, 2);
}

/**
 * ICMPv6 neighbour advertisement: `target` is the address it claims, `mac` the link-layer address
 * it claims for it (target link-layer option); unsolicited with the override flag, as a guest
 * poisoning its neighbours' caches would send it. With `decoy`, behind a hop-by-hop header that puts
 * that address where a plain advertisement's target would be (an attempt to fool an offset match).
 */
export function neighborAdvertisement(src: string, dst: string, target: string, mac: string, decoy?: string): number[] {
  const na = [136, 0, 0, 0, 0x20, 0, 0, 0, ...ipv6Bytes(target), 2, 1, ...macBytes(mac)];
  const plain = ipv6(src, dst, 58, na, 2);
  if (decoy === undefined) return plain;
  // `decoy` in a hop-by-hop option, at bytes 48-63 where a plain advertisement's target is: type 0x1e
  // (RFC 4727's experimental type, "skip if unknown", so receivers accept it; PadN must be zeros).
  return withHopByHop(plain, [0x1e, 20, 0, 0, 0, 0, ...ipv6Bytes(decoy)]);
}

/**
 * The same IPv6 packet behind a hop-by-hop header holding `options` (their length plus two a multiple
 * of 8; by default one PadN). The upper-layer checksum stays valid: its pseudo-header carries the
 * upper-layer length and protocol, not the extension headers.
 */
export function withHopByHop(packet: readonly number[], options: readonly number[] = [1, 4, 0, 0, 0, 0]): number[] {
  const header = [packet[6] ?? 0, (options.length + 2) / 8 - 1, ...options];
  const upper = packet.slice(40);
  return [...packet.slice(0, 4), ...u16(header.length + upper.length), 0, ...packet.slice(7, 40), ...header, ...upper];
}

export const ETHERTYPE = { ipv4: 0x0800, arp: 0x0806, ipv6: 0x86dd } as const;

/** Solicited-node multicast MACs and friends: 33:33 + the low 32 bits of an IPv6 multicast address. */
export function ipv6MulticastMac(ip: string): string {
  const bytes = ipv6Bytes(ip).slice(12);
  return ['33', '33', ...bytes.map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export function toHex(frame: readonly number[]): string {
  return Buffer.from(frame).toString('hex');
}
