import { describe, expect, it } from 'vitest';
import { effectiveMask, iptablesSetting, parseContainerConfig, parseNetif, parseVzConfig, validateCtid } from '../../../lib/openvz/config.js';
import { tokensOfMask } from '../../../lib/openvz/modules.js';
import { tokensForRule } from '../../../lib/openvz/check.js';

describe('vzctl config syntax', () => {
  it.each([
    ['IPTABLES="ipt_state iptable_filter"', 'IPTABLES', 'ipt_state iptable_filter'],
    ['IPTABLES="a" # comment', 'IPTABLES', 'a'],
    ["IPTABLES='ipt_state'", 'IPTABLES', "'ipt_state'"],
    ['IPTABLES = "ipt_state"', 'IPTABLES ', ' "ipt_state"'],
    ['  ONBOOT="yes"', 'ONBOOT', 'yes'],
  ])('%s -> key %j value %j', (line, key, value) => {
    expect(parseVzConfig(line)[0]).toMatchObject({ key, value });
  });

  it('skips comments and blank lines and keeps line numbers', () => {
    expect(parseVzConfig('# x\n\nA="1"\n').map((l) => [l.key, l.line])).toEqual([['A', 3]]);
  });

  it('ORs repeated IPTABLES lines and accepts tab, space and comma separators', () => {
    const setting = iptablesSetting(parseVzConfig('IPTABLES="ipt_state"\nIPTABLES="iptable_filter,ipt_recent\tipt_LOG"\n'), 'f');
    expect(tokensOfMask(setting?.mask ?? 0n)).toEqual(['ip_tables', 'iptable_filter', 'ipt_LOG', 'ip_conntrack', 'ipt_state', 'ipt_recent']);
  });

  it('an unknown token is an error naming file, line and token (vzctl only warns and skips)', () => {
    expect(() => iptablesSetting(parseVzConfig('\nIPTABLES="ipt_state xt_recent"\n'), '/etc/vz/conf/101.conf')).toThrow(
      /`IPTABLES` to be vzctl module names .*got `xt_recent` \(\/etc\/vz\/conf\/101.conf line 2\)/,
    );
  });

  it('effective list: CT NETFILTER, then CT IPTABLES, then global, then the default', () => {
    const global = iptablesSetting(parseVzConfig('IPTABLES="ipt_recent"'), 'vz.conf');
    const ct = (text: string) => parseContainerConfig(text, '101', '101.conf');
    expect(effectiveMask(ct('NETFILTER="stateful"\nIPTABLES="ipt_recent"'), global, 'vz.conf').source).toBe('NETFILTER="stateful" in 101.conf');
    expect(effectiveMask(ct('IPTABLES="ipt_LOG"'), global, 'vz.conf').source).toBe('IPTABLES in 101.conf');
    expect(effectiveMask(ct(''), global, 'vz.conf').source).toBe('IPTABLES in vz.conf');
    expect(effectiveMask(ct(''), undefined, 'vz.conf').mask).toBe(0x17bfn);
  });

  it('rejects a bad NETFILTER value', () => {
    expect(() => parseContainerConfig('NETFILTER="open"', '101', 'f')).toThrow(/`NETFILTER` to be disabled, stateless, stateful or full, got `open`/);
  });
});

describe('NETIF', () => {
  const origin = { source: '/etc/vz/conf/101.conf', line: 9 };
  it('reads interfaces as vzctl stores them, host_ifname defaulting to veth<CTID>.<N>', () => {
    const veths = parseNetif('ifname=eth0,bridge=vmbr0,mac=00:18:51:AA:BB:CC,host_ifname=veth101.0,host_mac=00:18:51:DD:EE:FF;ifname=eth1,mac=00:18:51:00:00:01', '101', origin);
    expect(veths.map((v) => [v.ifname, v.hostIfname, v.mac, v.bridge])).toEqual([
      ['eth0', 'veth101.0', '00:18:51:aa:bb:cc', 'vmbr0'],
      ['eth1', 'veth101.1', '00:18:51:00:00:01', undefined],
    ]);
  });
  it.each([
    ['bridge=vmbr0', /NETIF interface 1 has no ifname=/],
    ['ifname=eth0,host_ifname=veth101.0;rm -rf /', /`NETIF` to be key=value fields/],
    ['ifname=eth0,mac=zz', /`mac` to be a MAC address/],
    ['ifname=eth0,host_ifname=veth-with-a-very-long-name', /`NETIF host_ifname`/],
  ])('rejects %j', (value, message) => {
    expect(() => parseNetif(value, '101', origin)).toThrow(message);
  });
});

describe('CTID', () => {
  it.each(['101', '1', '4294967295'])('accepts %s', (ctid) => expect(validateCtid(ctid, { source: 't' })).toBe(ctid));
  it.each(['0', '101a', '-1', '../101', '', '1 2'])('rejects %j', (ctid) => expect(() => validateCtid(ctid, { source: 't' })).toThrow(/`CTID` to be a container number/));
});

describe('what an iptables command needs', () => {
  it.each([
    ['-A INPUT -m recent --set --name ssh', ['ip_tables', 'ipt_recent', 'iptable_filter']],
    ['-A INPUT -m state --state ESTABLISHED -j ACCEPT', ['ip_tables', 'ipt_state', 'iptable_filter']],
    ['-t nat -A POSTROUTING -o venet0 -j MASQUERADE', ['ip_tables', 'iptable_nat']],
    ['-A INPUT -p tcp -m multiport --dports 22,80 -j LOG', ['ip_tables', 'ipt_multiport', 'ipt_LOG', 'iptable_filter']],
  ])('%s', (rule, tokens) => {
    expect(tokensForRule(rule).tokens.sort()).toEqual([...tokens].sort());
  });
});
