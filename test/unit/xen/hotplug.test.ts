import { describe, expect, it } from 'vitest';
import { parseHookArguments, parseLibxlInvocation } from '../../../lib/xen/hotplug.js';
import { readPortFromXenstore } from '../../../lib/xen/port.js';
import type { Xenstore } from '../../../lib/xen/xenstore.js';

const env = { XENBUS_PATH: 'backend/vif/5/0', vif: 'vif5.0' };

describe('parseLibxlInvocation', () => {
  it.each([
    [['online', 'type_if=vif'], 'up', 'vif'],
    [['offline', 'type_if=vif'], 'down', 'vif'],
    [['add', 'type_if=tap'], 'up', 'tap'],
    [['remove', 'type_if=tap'], 'down', 'tap'],
    [['online'], 'up', 'vif'],
  ])('%j', (argv, action, typeIf) => {
    const request = parseLibxlInvocation(argv, { ...env, INTERFACE: 'vif5.0-emu' });
    expect(request.action).toBe(action);
    expect(request.typeIf).toBe(typeIf);
  });
  it.each([
    [['start'], /`command`.*`start`/],
    [['online', 'type_if=ioemu'], /`type_if`/],
    [['online'], /XENBUS_PATH.*`\/etc\/passwd`/, { XENBUS_PATH: '/etc/passwd' }],
    [['online'], /`vif`.*`vif5.0;id`/, { vif: 'vif5.0;id' }],
  ])('rejects %j', (argv, message, extra = {}) => {
    expect(() => parseLibxlInvocation(argv, { ...env, ...extra })).toThrow(message);
  });
});

describe('parseHookArguments', () => {
  it('takes what vif-guard.hook passes, empty values meaning unset', () => {
    expect(parseHookArguments('up', ['--command', 'online', '--dev', 'vm01', '--type-if', 'vif', '--ip', '', '--bridge', '', '--xenbus-path', 'backend/vif/5/0'], {})).toEqual({
      action: 'up',
      typeIf: 'vif',
      dev: 'vm01',
      vif: undefined,
      xenbusPath: 'backend/vif/5/0',
      ip: '',
      bridge: undefined,
    });
  });
  it('refuses a command that does not match the hook', () => {
    expect(() => parseHookArguments('up', ['--command', 'offline'], {})).toThrow(/does not match/);
  });
  it('refuses option injection in a value', () => {
    expect(() => parseHookArguments('up', ['--dev', '-j ACCEPT'], {})).toThrow(/`dev`/);
  });
});

function fakeXenstore(nodes: Record<string, string>): Xenstore {
  return {
    read: async (path) => nodes[path],
    write: async () => undefined,
    list: async () => [],
  };
}

describe('readPortFromXenstore', () => {
  it('reads ip, mac, bridge, vifname and the domain name like vif-common.sh; xenstore ip wins over --ip', async () => {
    const port = await readPortFromXenstore(parseLibxlInvocation(['online', 'type_if=vif'], env), fakeXenstore({
      'backend/vif/5/0/vifname': 'vm01',
      'backend/vif/5/0/ip': '172.16.39.105 172.16.39.106/31',
      'backend/vif/5/0/mac': '00:16:3E:7C:1F:6E',
      'backend/vif/5/0/bridge': 'xenbr0',
      '/local/domain/5/name': 'vm01',
    }));
    expect({ ...port, addresses: port.addresses.map((a) => a.cidr) }).toEqual({
      ifname: 'vm01',
      guest: 'vm01',
      bridge: 'xenbr0',
      mac: '00:16:3e:7c:1f:6e',
      addresses: ['172.16.39.105/32', '172.16.39.106/31'],
      key: 'xen:5/0',
    });
  });
  it('a tap is vifname-emu, else $vif-emu', async () => {
    const request = parseLibxlInvocation(['add', 'type_if=tap'], env);
    expect((await readPortFromXenstore(request, fakeXenstore({}))).ifname).toBe('vif5.0-emu');
  });
  it('a hostile xenstore value is an error naming the node', async () => {
    await expect(
      readPortFromXenstore(parseLibxlInvocation(['online'], env), fakeXenstore({ 'backend/vif/5/0/ip': '10.0.0.1 -j ACCEPT' })),
    ).rejects.toThrow('Expected `ip` to be an IPv4/IPv6 address or CIDR, got `-j` (xenstore backend/vif/5/0/ip)');
  });
});
