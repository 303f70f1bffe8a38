import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { linkLocalFromMac } from '../../../lib/guest/eui64.js';
import { compressIpv6 } from '../../../lib/guest/validate.js';

/** RFC 4291 appendix A, through the general RFC 5952 compressor. */
const reference = (mac: string) => {
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0] = mac.split(':').map((hex) => parseInt(hex, 16));
  return compressIpv6([0xfe80, 0, 0, 0, ((a ^ 0x02) << 8) | b, (c << 8) | 0xff, (0xfe << 8) | d, (e << 8) | f]);
};

describe('linkLocalFromMac', () => {
  it('the modified EUI-64 link-local, compressed as RFC 5952 says', () => {
    expect(linkLocalFromMac('00:16:3e:7c:1f:6e')).toEqual({ family: 6, address: 'fe80::216:3eff:fe7c:1f6e', prefix: 128, cidr: 'fe80::216:3eff:fe7c:1f6e/128' });
    // The universal/local bit flips group 4 to zero: the run of zeros grows to four groups.
    expect(linkLocalFromMac('02:00:5e:00:00:01').address).toBe('fe80::5eff:fe00:1');
    // A single zero group at the end stays written out.
    expect(linkLocalFromMac('02:00:00:00:00:00').address).toBe('fe80::ff:fe00:0');
  });

  it('equals the general compressor for any MAC, in either case', () => {
    const mac = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }).chain((bytes) =>
      fc.boolean().map((upper) => {
        const text = bytes.map((byte) => byte.toString(16).padStart(2, '0')).join(':');
        return upper ? text.toUpperCase() : text;
      }),
    );
    fc.assert(fc.property(mac, (text) => linkLocalFromMac(text).address === reference(text)), { numRuns: 2000 });
  });
});
