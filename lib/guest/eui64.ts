import { parseAddress, type GuestAddress } from './validate.js';

/** The link-local address a guest derives from its MAC (RFC 4291 appendix A): fe80::XXXX:XXff:feXX:XXXX. */
export function linkLocalFromMac(mac: string): GuestAddress {
  const bytes = mac.split(':').map((hex) => parseInt(hex, 16));
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0] = bytes;
  const group = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  return parseAddress(`fe80::${group(a ^ 0x02, b)}:${group(c, 0xff)}:${group(0xfe, d)}:${group(e, f)}`, { source: `MAC ${mac}` });
}
