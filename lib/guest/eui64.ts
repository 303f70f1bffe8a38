import { compressIpv6, type GuestAddress } from './validate.js';

/** The link-local address a guest derives from its MAC (RFC 4291 appendix A): fe80::XXXX:XXff:feXX:XXXX. */
export function linkLocalFromMac(mac: string): GuestAddress {
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0] = mac.split(':').map((hex) => parseInt(hex, 16));
  // The MAC is validated; building the address directly (not parsing it back) keeps sync fast at thousands of guests.
  const address = compressIpv6([0xfe80, 0, 0, 0, ((a ^ 0x02) << 8) | b, (c << 8) | 0xff, (0xfe << 8) | d, (e << 8) | f]);
  return { family: 6, address, prefix: 128, cidr: `${address}/128` };
}
