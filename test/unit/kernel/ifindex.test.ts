import { describe, expect, it } from 'vitest';
import { interfaceIndexes, parseLinkIndexes, withIfindex } from '../../../lib/kernel/ifindex.js';
import { createRecordingRunner } from '../../helpers/recording-runner.js';

// As `ip -o link show` prints them (one line per interface, the rest of each line cut here).
const LISTING = [
  '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00',
  '2: xenbr0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000',
  '7: vif3.0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc pfifo_fast master xenbr0 state UP',
  '8: vif3.0-emu: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc pfifo_fast master xenbr0 state DOWN',
  '9: veth101.0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master xenbr0 state UP',
  '10: ip6tnl0@NONE: <NOARP> mtu 1452 qdisc noop state DOWN mode DEFAULT group default qlen 1000',
  // Names no port can have: they must not pass for the shorter name before the `@`.
  '11: web@x@NONE: <BROADCAST> mtu 1500',
  '12: db@if7@if9: <BROADCAST> mtu 1500',
].join('\n');

describe('interface indexes', () => {
  it('one listing gives every index; names no port can have match nothing', () => {
    const indexes = parseLinkIndexes(LISTING);
    expect([...indexes]).toEqual([['lo', 1], ['xenbr0', 2], ['vif3.0', 7], ['vif3.0-emu', 8], ['veth101.0', 9], ['ip6tnl0', 10]]);
    expect(indexes.has('web')).toBe(false);
    expect(indexes.has('db')).toBe(false);
  });

  it('a port takes its index from the listing, and none when its interface is not there', () => {
    const indexes = parseLinkIndexes(LISTING);
    const port = { ifname: 'vif3.0', guest: 'g', bridge: 'xenbr0', mac: undefined, addresses: [] };
    expect(withIfindex(port, indexes).ifindex).toBe(7);
    expect(withIfindex({ ...port, ifname: 'vif4.0' }, indexes).ifindex).toBeUndefined();
    expect(withIfindex({ ...port, ifindex: 3 }, indexes).ifindex).toBe(3);
  });

  it('ip failing or listing nothing leaves the caller to read sysfs', async () => {
    const fails = createRecordingRunner(() => ({ exitCode: 1, stderr: 'ip: not found' }), ['ip']);
    expect(await interfaceIndexes(fails.runner)).toBeUndefined();
    const empty = createRecordingRunner(() => ({ stdout: '' }), ['ip']);
    expect(await interfaceIndexes(empty.runner)).toBeUndefined();
    const real = createRecordingRunner(() => ({ stdout: LISTING }), ['ip']);
    expect((await interfaceIndexes(real.runner))?.get('veth101.0')).toBe(9);
    expect(real.calls.map((call) => [call.command, ...call.args].join(' '))).toEqual(['ip -o link show']);
  });
});
