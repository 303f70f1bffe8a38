import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseContainerAddresses, sectionsFor } from '../../../lib/openvz/addresses.js';

const FILE = '/etc/vif-guard/containers.conf';
const cidrs = (map: ReturnType<typeof parseContainerAddresses>, ctid: string) =>
  [...(map.get(ctid) ?? new Map())].map(([ifname, addresses]) => [ifname, addresses.map((address) => address.cidr)]);

describe('containers.conf, one container at a time (hooks)', () => {
  it('reads the same addresses for a container as the whole file does, from every section that names it', () => {
    const text = [
      '; vif-guard containers',
      '[100]',
      'eth0 = 10.0.0.100',
      '[101]',
      'eth0 = 10.0.0.101 2001:db8::/64',
      '[1010]',
      'eth0 = 10.0.0.110',
      '[101]',
      'eth1 = 10.0.1.101',
      '["102"]',
      'eth0 = 10.0.0.102',
      // ini unquotes a quoted header with JSON.parse: this one names 101 without spelling it.
      '["\\u0031\\u0030\\u0031"]',
      'eth2 = 10.0.2.101',
    ].join('\r\n');
    const whole = parseContainerAddresses(text, FILE);
    for (const ctid of ['100', '101', '102', '1010']) {
      expect(cidrs(parseContainerAddresses(sectionsFor(text, ctid), FILE), ctid)).toEqual(cidrs(whole, ctid));
    }
    expect(cidrs(whole, '101')).toEqual([['eth0', ['10.0.0.101/32', '2001:db8::/64']], ['eth1', ['10.0.1.101/32']], ['eth2', ['10.0.2.101/32']]]);
    // A quoted header could be any container's, merged with any other of its name: the whole file is read.
    expect(sectionsFor(text, '101')).toBe(text);
    const plain = text.split('\r\n').slice(0, -4).join('\n');
    expect(sectionsFor(plain, '101')).not.toContain('10.0.0.100');
  });

  it('a quoted header merged with a later one of the same name: its replaced value does not fail another container (fuzzing found it)', () => {
    const text = '["1010"]\neth0 = bogus\n[ 1010 ]\neth0 = 10.1.2.3';
    expect(cidrs(parseContainerAddresses(text, FILE), '1010')).toEqual([['eth0', ['10.1.2.3/32']]]);
    expect(cidrs(parseContainerAddresses(sectionsFor(text, '202'), FILE), '202')).toEqual([]);
  });

  it("another container's bad entry fails sync's whole read but not this container's hook", () => {
    const text = '[101]\neth0 = 10.0.0.101\n[102]\neth0 = not-an-address\n';
    expect(() => parseContainerAddresses(text, FILE)).toThrow(/not-an-address/);
    expect(cidrs(parseContainerAddresses(sectionsFor(text, '101'), FILE), '101')).toEqual([['eth0', ['10.0.0.101/32']]]);
    expect(() => parseContainerAddresses(sectionsFor(text, '102'), FILE)).toThrow(/not-an-address/);
  });

  it('a key before any section fails both reads, as it names no container', () => {
    const text = 'eth0 = 10.0.0.1\n[101]\neth0 = 10.0.0.101\n';
    expect(() => parseContainerAddresses(text, FILE)).toThrow(/must be inside a \[CTID\] section/);
    expect(() => parseContainerAddresses(sectionsFor(text, '101'), FILE)).toThrow(/must be inside a \[CTID\] section/);
  });

  it('property: whenever the whole file reads, one container reads the same; it fails only where the whole file fails', () => {
    const ctid = fc.constantFrom('101', '1010', '11', '0101', '202');
    const header = fc.oneof(
      ctid.map((id) => `[${id}]`),
      ctid.map((id) => `["${id}"]`),
      ctid.map((id) => `[ ${id} ]`),
      ctid.map((id) => `[${id}] ; note`),
      ctid.map((id) => `[${id}.eth0]`),
      ctid.map((id) => `["${[...id].map((c) => `\\u00${c.charCodeAt(0).toString(16)}`).join('')}"]`),
      fc.constant('[x]'),
    );
    const body = fc.oneof(
      fc.constantFrom('eth0', 'eth1', 'veth0').map((ifname) => `${ifname} = 10.1.2.3`),
      fc.constantFrom('eth0 = 2001:db8::/64', 'eth1 = 10.9.0.0/29 10.9.1.1', '; comment', '# [101]', '', '  ', 'eth0 = bogus', 'stray'),
    );
    const file = fc.array(fc.oneof(header, body), { maxLength: 14 }).map((lines) => lines.join('\n'));
    fc.assert(
      fc.property(file, ctid, (text, id) => {
        let whole: ReturnType<typeof parseContainerAddresses> | undefined;
        try {
          whole = parseContainerAddresses(text, FILE);
        } catch {
          whole = undefined;
        }
        let one: ReturnType<typeof parseContainerAddresses> | undefined;
        try {
          one = parseContainerAddresses(sectionsFor(text, id), FILE);
        } catch {
          one = undefined;
        }
        if (whole) expect(one && cidrs(one, id)).toEqual(cidrs(whole, id));
        if (!one) expect(whole).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });
});
