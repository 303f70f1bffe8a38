import { describe, expect, it } from 'vitest';
import { parseAddress, parseAddressList, parseIfname, parseMac } from '../../../lib/guest/validate.js';
import { VifGuardError } from '../../../lib/errors.js';

const origin = { source: '/etc/xen/vm01', line: 7 };

describe('parseAddress', () => {
  it.each([
    ['172.16.39.105', '172.16.39.105/32', 4],
    ['172.16.39.106/31', '172.16.39.106/31', 4],
    ['10.0.0.5/24', '10.0.0.0/24', 4],
    ['10.1.2.3/8', '10.0.0.0/8', 4],
    ['2001:db8::1', '2001:db8::1/128', 6],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1/128', 6],
    ['2001:db8:1:2::/64', '2001:db8:1:2::/64', 6],
    ['2001:db8:1:2:3:4:5:6/64', '2001:db8:1:2::/64', 6],
    ['fe80::216:3eff:fe7c:1f6e', 'fe80::216:3eff:fe7c:1f6e/128', 6],
    ['::ffff:192.0.2.1', '::ffff:c000:201/128', 6],
    ['2001:db8:0:1:0:0:0:0/64', '2001:db8:0:1::/64', 6],
  ])('%s -> %s', (input, cidr, family) => {
    const address = parseAddress(input, origin);
    expect(address.cidr).toBe(cidr);
    expect(address.family).toBe(family);
  });

  it.each([
    '10.0.0.300',
    '10.0.0.1/33',
    '10.0.0.0/0',
    '0.0.0.0/0',
    '10.0.0.0/7',
    '::/0',
    '2001:db8::/15',
    '1.2.3.4 -j ACCEPT',
    '1.2.3.4/',
    '1.2.3.4/abc',
    '-s',
    '',
    'fe80::1%eth0',
    '10.0.0.1;rm -rf /',
    '１.２.３.４',
    '127.0.0.1',
    '0.1.2.3',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'ff02::1',
  ])('rejects %j with file, line and value', (input) => {
    expect(() => parseAddress(input, origin)).toThrow(VifGuardError);
    expect(() => parseAddress(input, origin)).toThrow(/\/etc\/xen\/vm01 line 7/);
  });

  it('names what was expected and what was found', () => {
    expect(() => parseAddress('10.0.0.300', origin)).toThrow(
      'Expected `ip` to be an IPv4/IPv6 address or CIDR, got `10.0.0.300` (/etc/xen/vm01 line 7)',
    );
  });
});

describe('parseAddressList', () => {
  it('splits on spaces like `for addr in $ip`, dropping duplicates', () => {
    expect(parseAddressList(' 172.16.39.105  172.16.39.106/31 172.16.39.105/32\t2001:db8::/64 ', origin).map((a) => a.cidr)).toEqual([
      '172.16.39.105/32',
      '172.16.39.106/31',
      '2001:db8::/64',
    ]);
  });
  it('an empty list is no addresses', () => {
    expect(parseAddressList('', origin)).toEqual([]);
  });
});

describe('parseMac', () => {
  it.each([['00:16:3E:7C:1F:6E', '00:16:3e:7c:1f:6e'], ['02:00:00:00:00:01', '02:00:00:00:00:01']])('%s', (input, mac) => {
    expect(parseMac(input, origin)).toBe(mac);
  });
  it.each(['00:16:3e:7c:1f', '00-16-3e-7c-1f-6e', 'ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '00:00:00:00:00:00', '00:16:3e:7c:1f:6e\n'])(
    'rejects %j',
    (input) => {
      expect(() => parseMac(input, origin)).toThrow(VifGuardError);
    },
  );
});

describe('parseIfname', () => {
  it.each(['vif1.0', 'vif12.0-emu', 'web01', 'veth101.0', 'a', 'x'.repeat(15), 'vm_01'])('accepts %s', (name) => {
    expect(parseIfname(name, 'vifname', origin)).toBe(name);
  });
  it.each(['', 'x'.repeat(16), '-j', '--physdev-in', 'vif+', 'vif 1', 'vif1.0\n', 'a/b', '..', '.', 'vif$(id)', 'vif`id`', 'név'])(
    'rejects %j',
    (name) => {
      expect(() => parseIfname(name, 'vifname', origin)).toThrow(VifGuardError);
    },
  );
});

describe('overlapping addresses across guests', () => {
  it('warns when two guests are given the same or overlapping addresses, and only then', async () => {
    const { overlaps } = await import('../../../lib/core/inventory.js');
    const port = (guest: string, ifname: string, ip: string) => ({ ifname, guest, bridge: 'xenbr0', mac: undefined, addresses: parseAddressList(ip, origin) });
    expect(overlaps([port('a', 'vif1.0', '10.0.0.5'), port('b', 'vif2.0', '10.0.0.0/24')])).toEqual([
      '10.0.0.0/24 (b, vif2.0) overlaps 10.0.0.5/32 (a, vif1.0): either guest may use those addresses',
    ]);
    expect(overlaps([port('a', 'vif1.0', '2001:db8::/64'), port('b', 'vif2.0', '2001:db8::5')])).toHaveLength(1);
    expect(overlaps([port('a', 'vif1.0', '10.0.0.5 2001:db8::/64'), port('b', 'vif2.0', '10.0.0.6 2001:db8:1::/64')])).toEqual([]);
    expect(overlaps([port('a', 'vif1.0', '10.0.0.5'), port('a', 'vif1.0-emu', '10.0.0.5')])).toEqual([]);
    // Thousands of guests: sorted sweep, not pairwise.
    const many = Array.from({ length: 4000 }, (_, i) => port(`g${i}`, `vif${i}.0`, `10.${i >> 8}.${i & 255}.1`));
    const started = performance.now();
    expect(overlaps(many)).toEqual([]);
    expect(performance.now() - started).toBeLessThan(500);
  });
});
