import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseDomuConfig } from '../../../lib/xen/domu-config.js';
import { buildDomuNetwork, parseVifSpec } from '../../../lib/xen/vif-spec.js';

const fixture = (name: string) => `test/fixtures/domu/${name}`;
const network = (path: string) => buildDomuNetwork(parseDomuConfig(readFileSync(path, 'utf8'), path), path);

describe('domU configs', () => {
  it('reads an xl config with comments, both quotes and a multi-line vif list', () => {
    const parsed = network(fixture('vm01.cfg'));
    expect(parsed.name).toBe('vm01');
    expect(parsed.vifs.map((vif) => ({ vifname: vif.vifname, mac: vif.mac, bridge: vif.bridge, ip: vif.addresses.map((a) => a.cidr), line: vif.origin.line }))).toEqual([
      { vifname: 'vm01', mac: '00:16:3e:7c:1f:6e', bridge: 'xenbr0', ip: ['172.16.39.105/32', '172.16.39.106/31'], line: 7 },
      { vifname: undefined, mac: '00:16:3e:7c:1f:6f', bridge: 'xenbr1', ip: ['10.10.0.5/32'], line: 8 },
    ]);
  });

  it('reads an xm-style config with ; separators and a continued line', () => {
    const parsed = network(fixture('vm02'));
    expect(parsed.name).toBe('vm02');
    expect(parsed.vifs[0]?.addresses.map((a) => a.cidr)).toEqual(['192.0.2.10/32', '192.0.2.11/32']);
    expect(parsed.vifs[0]?.script).toBe('vif-bridge');
  });

  it('an empty vif list and a config without vif are fine', () => {
    expect(buildDomuNetwork(parseDomuConfig("name='a'\nvif = []\n", 'x'), 'x').vifs).toEqual([]);
    expect(buildDomuNetwork(parseDomuConfig("name='a'\n", 'x'), 'x').vifs).toEqual([]);
  });

  it('accepts a trailing comma in a list', () => {
    expect(buildDomuNetwork(parseDomuConfig("vif = [ 'ip=10.0.0.1', ]\n", 'x'), 'x').vifs).toHaveLength(1);
  });

  it.each([
    ["vif = [ 'ip=10.0.0.300' ]\n", /^Expected `ip` to be an IPv4\/IPv6 address or CIDR, got `10.0.0.300` \(\/etc\/xen\/bad.cfg line 1\)$/],
    ["name = 'a'\n\nvif = [\n  'mac=00:16:3e:00:00:01',\n  'ip=1.2.3.4 -j ACCEPT'\n]\n", /got `-j` \(\/etc\/xen\/bad.cfg line 5\)/],
    ["vif = [ 'vifname=vm01;reboot' ]\n", /vifname.*`vm01;reboot`.*line 1/],
    ["vif = [ 'ipaddr=10.0.0.1' ]\n", /unknown vif setting `ipaddr` in vif 0 \(\/etc\/xen\/bad.cfg line 1\)/],
    ["vif = [ 'ip=10.0.0.1'\n", /line 2: expected , or \] in list, got `end of file`/],
    ["vif = 'ip=10.0.0.1'\n", /line 1: vif must be a list/],
    ["vif = [ 'ip=10.0.0.1 ]\n", /line 1: a string may not span lines/],
    ["vif = [ 'mac=zz:16:3e:00:00:01' ]\n", /Expected `mac` to be a MAC address/],
    ["vif = [ 42 ]\n", /line 1: each vif must be a quoted string/],
    ["name = 'a b'\n", /Expected `name` to be a domain name/],
    ["vif = [ 'ip=10.0.0.1' ] junk\n", /line 1: unexpected `junk`/],
    ["vif := []\n", /line 1: unexpected character `:`/],
    ['vif = [ "ip=10.0.0.1\\q" ]\n', /unknown escape/],
    ["name = 'a'\u0000\n", /NUL byte/],
    ["$x = 1\n", /unexpected character `\$`/],
  ])('rejects %j naming file and line', (text, message) => {
    expect(() => buildDomuNetwork(parseDomuConfig(text, '/etc/xen/bad.cfg'), '/etc/xen/bad.cfg')).toThrow(message);
  });
});

describe('parseVifSpec', () => {
  it('skips leading spaces in each key, as xl_parse.c does, and keeps spaces inside ip', () => {
    const spec = parseVifSpec(' mac=00:16:3e:00:00:01 ,  ip=10.0.0.1  10.0.0.2 , bridge=xenbr0', 0, { source: 't' });
    expect(spec.addresses.map((a) => a.cidr)).toEqual(['10.0.0.1/32', '10.0.0.2/32']);
    expect(spec.bridge).toBe('xenbr0');
  });
  it('accepts flag keys and colo_ settings', () => {
    expect(parseVifSpec('trusted,colo_sock_mirror_id=1,ip=10.0.0.1', 0, { source: 't' }).addresses).toHaveLength(1);
  });
});
