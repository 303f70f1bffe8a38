import { describe, expect, it } from 'vitest';
import { advertisesNothing, buildPortIn6Chain, buildPortInChain, buildPortOutChain, logPrefix, MAX_TARGET_PATTERNS, parsePortComment, portComment, targetPatterns } from '../../../lib/rules/port.js';
import { renderRuleBody } from '../../../lib/backend/render.js';
import { buildRuleset } from '../../../lib/rules/build.js';
import { bridgeSkeleton } from '../../../lib/rules/bridge.js';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { parseAddressList } from '../../../lib/guest/validate.js';
import type { GuestPort } from '../../../lib/guest/model.js';

const port: GuestPort = {
  ifname: 'vm01',
  guest: 'vm01',
  bridge: 'xenbr0',
  mac: '00:16:3e:7c:1f:6e',
  addresses: parseAddressList('172.16.39.105 172.16.39.106/31 2001:db8::5', { source: 't' }),
};

describe('per-port chains', () => {
  it('from the guest: DHCP offers dropped first, own sources and DHCP requests pass, the rest logged and dropped', () => {
    expect(buildPortInChain(port, DEFAULT_SETTINGS)).toEqual({
      name: 'vif-guard-i-vm01',
      rules: [
        ['-p', 'udp', '-m', 'multiport', '--sports', '67', '-m', 'multiport', '--dports', '68', '-m', 'limit', '--limit', '6/min', '--limit-burst', '10', '-j', 'LOG', '--log-prefix', 'vifg-dhcps:vm01 '],
        ['-p', 'udp', '-m', 'multiport', '--sports', '67', '-m', 'multiport', '--dports', '68', '-j', 'DROP'],
        ['-s', '172.16.39.105/32', '-j', 'RETURN'],
        ['-s', '172.16.39.106/31', '-j', 'RETURN'],
        ['-p', 'udp', '-m', 'multiport', '--sports', '68', '-m', 'multiport', '--dports', '67', '-j', 'RETURN'],
        ['-m', 'limit', '--limit', '6/min', '--limit-burst', '10', '-j', 'LOG', '--log-prefix', 'vifg-src:vm01 '],
        ['-m', 'comment', '--comment', 'vif-guard port=vm01 guest=vm01 bridge=xenbr0 mac=00:16:3e:7c:1f:6e key=-', '-j', 'DROP'],
      ],
    });
  });

  it('to the guest: its addresses, broadcast, multicast and DHCP replies', () => {
    expect(buildPortOutChain(port, { ...DEFAULT_SETTINGS, log: false })).toEqual({
      name: 'vif-guard-o-vm01',
      rules: [
        ['-d', '172.16.39.105/32', '-j', 'RETURN'],
        ['-d', '172.16.39.106/31', '-j', 'RETURN'],
        ['-m', 'pkttype', '--pkt-type', 'broadcast', '-j', 'RETURN'],
        ['-d', '224.0.0.0/4', '-j', 'RETURN'],
        ['-p', 'udp', '-m', 'multiport', '--sports', '67', '-m', 'multiport', '--dports', '68', '-j', 'RETURN'],
        ['-j', 'DROP'],
      ],
    });
  });

  it('log prefixes fit iptables\' 29 characters for the longest interface name', () => {
    for (const dropClass of ['src', 'dhcps', 'dst', 'dhcp6s', 'nd_target', 'blocked'] as const) expect(logPrefix(dropClass, 'x'.repeat(15)).length).toBeLessThanOrEqual(29);
    expect(logPrefix('nd_target', 'vif12.0')).toBe('vifg-nd_target:vif12.0 ');
  });

  it('neighbour advertisement targets: an address is all 16 bytes, a prefix its own bytes, an odd prefix every pattern of its next byte length', () => {
    const patterns = (text: string) => targetPatterns(parseAddressList(text, { source: 't' }));
    expect(patterns('2001:db8::5')).toEqual(['20010db8000000000000000000000005']);
    expect(patterns('2001:db8:1:2::/64 2001:db8:1:2::7')).toEqual(['20010db800010002']);
    expect(patterns('2001:db8:8200::/56')).toEqual(['20010db8820000']);
    expect(patterns('2001:db8:1:10::/60')).toEqual(Array.from({ length: 16 }, (_, i) => `20010db80001001${i.toString(16)}`));
    expect(patterns('2001:db8:1:2::/63')).toEqual(['20010db800010002', '20010db800010003']);
    // Past the cap there are none: the port may then advertise nothing (fails closed; doctor names it).
    expect(patterns('2001:db8:1:10::/60 2001:db8:2::/64 2001:db8:3::/64 2001:db8:4::/64 2001:db8:5::/64')?.length).toBe(MAX_TARGET_PATTERNS);
    expect(patterns('2001:db8:1:10::/60 2001:db8:2::/64 2001:db8:3::/64 2001:db8:4::/64 2001:db8:5::/64 2001:db8:6::/64')).toBeUndefined();
  });

  it('the largest advertisement rule, logged, fits the 255 arguments iptables-restore takes a line', () => {
    const max = { ...port, mac: undefined, addresses: parseAddressList('2001:db8:1:10::/60 2001:db8:2::/64 2001:db8:3::/64 2001:db8:4::/64 2001:db8:5::/64', { source: 't' }) };
    const chain = buildPortIn6Chain(max, DEFAULT_SETTINGS);
    const longest = Math.max(...chain.rules.map((rule) => rule.length));
    // iptables-restore adds its name, -t and the table before `-A <chain>` and the rule's tokens; it fails at 254.
    expect(3 + 2 + longest).toBeLessThan(254);
    expect(chain.rules.filter((rule) => rule.includes('--hex-string'))).toHaveLength(2);
    // The same addresses and a MAC (its link-local is one more pattern): past the cap, which doctor reports.
    expect(advertisesNothing(max, DEFAULT_SETTINGS)).toBe(false);
    expect(advertisesNothing({ ...max, mac: '00:16:3e:00:00:01' }, DEFAULT_SETTINGS)).toBe(true);
    expect(advertisesNothing(port, DEFAULT_SETTINGS)).toBe(false);
  });

  it('from the guest (IPv6): an advertisement behind extension headers, or for an address not its own, is dropped before any source passes', () => {
    const chain = buildPortIn6Chain(port, { ...DEFAULT_SETTINGS, log: false });
    const rules = chain.rules.map(renderRuleBody);
    const extensions = rules.indexOf('-p ipv6-icmp -m icmp6 --icmpv6-type 136 -m ipv6header ! --header protocol -j DROP');
    const target = rules.findIndex((rule) => rule.startsWith('-p ipv6-icmp -m icmp6 --icmpv6-type 136 -m string'));
    // As ip6tables-save prints it: its link-local (from the MAC) and its one address, each pinned to bytes 48-63.
    expect(rules[target]).toBe(
      '-p ipv6-icmp -m icmp6 --icmpv6-type 136 -m string ! --hex-string "|fe8000000000000002163efffe7c1f6e|" --algo bm --from 48 --to 64 -m string ! --hex-string "|20010db8000000000000000000000005|" --algo bm --from 48 --to 64 -j DROP',
    );
    expect(extensions).toBeGreaterThan(-1);
    expect(target).toBeGreaterThan(extensions);
    expect(target).toBeLessThan(rules.findIndex((rule) => rule.endsWith('-j RETURN')));
    // A port with nothing to advertise gets the bare match: every advertisement dropped.
    const bare = buildPortIn6Chain({ ...port, mac: undefined, addresses: [] }, { ...DEFAULT_SETTINGS, log: false }).rules.map(renderRuleBody);
    expect(bare).toContain('-p ipv6-icmp -m icmp6 --icmpv6-type 136 -j DROP');
  });

  it('the port comment round-trips', () => {
    expect(parsePortComment(portComment(port))).toEqual({ ifname: 'vm01', guest: 'vm01', bridge: 'xenbr0', mac: '00:16:3e:7c:1f:6e', key: undefined });
    expect(parsePortComment(portComment({ ...port, bridge: undefined, mac: undefined, key: 'xen:5/0' }))).toEqual({ ifname: 'vm01', guest: 'vm01', bridge: undefined, mac: undefined, key: 'xen:5/0' });
  });
});

describe('buildRuleset', () => {
  it('leaves a vif without addresses alone by default, and blocks it with unaddressed = block', () => {
    const bare: GuestPort = { ...port, ifname: 'vif9.0', addresses: [] };
    const names = (settings: typeof DEFAULT_SETTINGS) =>
      buildRuleset([bare], settings, 'iptables').tables[0]?.chains.map((chain) => chain.name);
    expect(names(DEFAULT_SETTINGS)).toEqual(['vif-guard-fwd', 'vif-guard-in', 'vif-guard-out']);
    expect(names({ ...DEFAULT_SETTINGS, unaddressed: 'block' })).toContain('vif-guard-i-vif9.0');
  });

  it('layer2 = no: no bridge table at all with the iptables backend (kernels without nf_tables)', () => {
    const ports: GuestPort[] = [{ ifname: 'vif1.0', guest: 'g', bridge: undefined, mac: '00:16:3e:00:00:01', addresses: parseAddressList('10.0.0.1', { source: 't' }) }];
    expect(buildRuleset(ports, DEFAULT_SETTINGS, 'iptables').bridge?.ports).toHaveLength(1);
    expect(buildRuleset(ports, { ...DEFAULT_SETTINGS, layer2: false }, 'iptables').bridge).toBeUndefined();
    // The nftables backend has no iptables chains at all, and its table whatever layer2 says.
    const nft = buildRuleset(ports, { ...DEFAULT_SETTINGS, layer2: false }, 'nftables');
    expect(nft.tables.every((table) => table.chains.length === 0 && table.jumps.length === 0)).toBe(true);
    expect(nft.bridge?.ip).toBe(true);
  });

  it('no rule uses an option that libxtables resolves through getaddrinfo (a dump of every interface per option)', () => {
    // udp/tcp's --sport/--dport look the value up as a service name first; multiport parses numbers as numbers.
    const ruleset = buildRuleset([port, { ...port, ifname: 'vm02', mac: '00:16:3e:7c:1f:6f' }], { ...DEFAULT_SETTINGS, log: true, unaddressed: 'block' }, 'iptables');
    const tokens = ruleset.tables.flatMap((table) => table.chains.flatMap((chain) => chain.rules.flat()));
    expect(tokens).toContain('--sports');
    for (const option of ['--sport', '--dport', '--source-port', '--destination-port']) expect(tokens).not.toContain(option);
  });

  it('NOTRACK covers the guarded ports and their MACs, or nothing when the setting is off', () => {
    const on = bridgeSkeleton(DEFAULT_SETTINGS, true).body.join('\n');
    expect(on).toContain('meta pkttype other notrack comment "from a guest"');
    expect(on).toMatch(/iifname != @guarded_[0-9a-f]{12} meta pkttype other ether daddr @macs notrack accept/);
    expect(on).toContain('meta pkttype other iif . ether saddr . ip saddr @fast4 th sport != 67 notrack accept');
    expect(on).toContain('meta pkttype other meta l4proto != ipv6-icmp iif . ether saddr . ip6 saddr @fast6 th sport != 547 notrack accept');
    expect(bridgeSkeleton({ ...DEFAULT_SETTINGS, notrack: false }, true).body.join('\n')).not.toContain('notrack');
  });
});

describe('blocklists on the iptables backend', () => {
  it('a blocked port matches its sets first in each chain (sources to it, destinations from it), logged as blocked', async () => {
    const { blockIpsets } = await import('../../../lib/rules/build.js');
    const { referencedIpsets } = await import('../../../lib/backend/ipset.js');
    const block = { digest: 'abcdef123456', rules: { to: [], from: [] }, elements: () => ({ in4: ['198.18.0.0/15'], in6: [], out4: [], out6: [] }) };
    const sets = blockIpsets('vm01', block);
    expect(sets).toEqual({ in4: 'vgb-vm01-i4-abcdef', in6: 'vgb-vm01-i6-abcdef', out4: 'vgb-vm01-o4-abcdef', out6: 'vgb-vm01-o6-abcdef' });
    const out = buildPortOutChain(port, DEFAULT_SETTINGS, sets).rules;
    expect(out.slice(0, 2)).toEqual([
      ['-m', 'set', '--match-set', 'vgb-vm01-i4-abcdef', 'src', '-m', 'limit', '--limit', '6/min', '--limit-burst', '10', '-j', 'LOG', '--log-prefix', 'vifg-blocked:vm01 '],
      ['-m', 'set', '--match-set', 'vgb-vm01-i4-abcdef', 'src', '-j', 'DROP'],
    ]);
    expect(buildPortInChain(port, { ...DEFAULT_SETTINGS, log: false }, sets).rules[0]).toEqual(['-m', 'set', '--match-set', 'vgb-vm01-o4-abcdef', 'dst', '-j', 'DROP']);
    const ruleset = buildRuleset([port], DEFAULT_SETTINGS, 'iptables', () => block);
    expect(ruleset.ipsets?.map((set) => [set.name, set.family, set.elements()])).toEqual([
      ['vgb-vm01-i4-abcdef', 4, ['198.18.0.0/15']],
      ['vgb-vm01-i6-abcdef', 6, []],
      ['vgb-vm01-o4-abcdef', 4, []],
      ['vgb-vm01-o6-abcdef', 6, []],
    ]);
    expect([...referencedIpsets(ruleset.tables.flatMap((table) => table.chains.flatMap((chain) => chain.rules.map((rule) => rule.join(' ')))))].sort()).toEqual(Object.values(sets).sort());
    // The longest name fits ipset's 31 characters.
    expect(blockIpsets('vif12345.123456', block).in4.length).toBeLessThanOrEqual(31);
  });
});
