import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAN_USE_NETNS, VARIANTS } from '../helpers/env.js';
import { Dom0Lab, listen, sendFrame, type Datagram, type Frame } from '../helpers/netns.js';
import { FakeXenHost } from '../helpers/xen.js';

const tokens = (datagrams: Datagram[]) => new Set(datagrams.map((d) => d.token));

// Blocklists on the iptables backend (hosts whose kernel cannot load the bridge table): one hash:net
// set per port, direction and family, matched first in the port's chains.
describe.skipIf(!CAN_USE_NETNS).each(VARIANTS)('blocklists on iptables-%s (ipset)', (variant) => {
  const subnet = variant === 'nft' ? '10.85.1' : '10.85.2';
  const BLOCKED = variant === 'nft' ? '198.18.7.9' : '198.18.8.9';
  const lab = new Dom0Lab(subnet);
  let xen: FakeXenHost;

  const sets = async () => (await lab.inDom0('ipset', 'list', '-n')).stdout.split('\n').filter((name) => name.startsWith('vgb-')).sort();

  async function exchange(): Promise<{ web: Set<string>; evil: Set<string>; uplink: Set<string> }> {
    const [web, evil, uplink] = ['web', 'evil', 'uplink'].map((name) => lab.guest(name)) as [ReturnType<Dom0Lab['guest']>, ReturnType<Dom0Lab['guest']>, ReturnType<Dom0Lab['guest']>];
    const frames: Frame[] = [
      { from: uplink, dstMac: web.mac, src: uplink.address, dst: web.address, sport: 4000, dport: 5000, token: 'internet-to-web' },
      { from: uplink, dstMac: web.mac, src: BLOCKED, dst: web.address, sport: 4000, dport: 5000, token: 'blocked-source-to-web' },
      { from: uplink, dstMac: evil.mac, src: BLOCKED, dst: evil.address, sport: 4000, dport: 5000, token: 'blocked-source-to-evil' },
      { from: web, dstMac: uplink.mac, src: web.address, dst: uplink.address, sport: 4000, dport: 5000, token: 'web-to-internet' },
      { from: web, dstMac: uplink.mac, src: web.address, dst: BLOCKED, sport: 4000, dport: 5000, token: 'web-to-blocked' },
    ];
    const webDone = await listen(lab, web.ns, [5000], 4);
    const evilDone = await listen(lab, evil.ns, [5000], 4);
    const uplinkDone = await listen(lab, uplink.ns, [5000], 4);
    for (const frame of frames) await sendFrame(lab, frame);
    return { web: tokens(await webDone()), evil: tokens(await evilDone()), uplink: tokens(await uplinkDone()) };
  }

  beforeAll(async () => {
    await lab.create();
    await lab.addGuest('web', 'vif1.0', 11, true);
    await lab.addGuest('evil', 'vif2.0', 12, true);
    await lab.addGuest('uplink', 'eth9', 50, true);
    await lab.inNs(lab.guest('uplink').ns, 'ip', 'addr', 'add', `${BLOCKED}/32`, 'dev', 'eth0');
    xen = new FakeXenHost(lab, variant);
    await xen.setup();
    xen.defineVif(1, 0, 'web', { ip: `${subnet}.11`, mac: lab.guest('web').mac, bridge: 'xenbr0' });
    xen.defineVif(2, 0, 'evil', { ip: `${subnet}.12`, mac: lab.guest('evil').mac, bridge: 'xenbr0' });
    for (const vif of ['vif1.0', 'vif2.0']) await lab.inDom0('ip', 'link', 'set', vif, 'nomaster', 'down');
    await xen.onlineAll([1, 2]);
  }, 180_000);

  afterAll(async () => {
    await lab.destroy();
    xen?.cleanup();
  });

  it('a zone of 8,600 prefixes drops its sources to that guest only', async () => {
    const before = await exchange();
    expect(before.web).toEqual(new Set(['internet-to-web', 'blocked-source-to-web']));
    const zone = join(xen.root, 'cn.zone');
    const lines = Array.from({ length: 8599 }, (_, i) => `100.${64 + (i >> 8)}.${i & 255}.0/24`);
    writeFileSync(zone, `# generated\n${lines.join('\n')}\n198.18.0.0/15\n`);
    // From this boot's cache: web's four chains are read, not the tables (4,000 guests: seconds).
    const saves = xen.traceTools([`iptables-${variant}-save`, `ip6tables-${variant}-save`]);
    const result = await xen.cli(['block', 'web', '--zone', zone, '--json']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(saves()).toEqual([]);
    expect(JSON.parse(result.stdout)).toMatchObject({ prefixes: 8600, ports: ['vif1.0'], name: 'cn' });
    const arrived = await exchange();
    expect(arrived.web).toEqual(new Set(['internet-to-web']));
    expect(arrived.evil).toEqual(new Set(['blocked-source-to-evil']));
    expect(arrived.uplink).toEqual(new Set(['web-to-internet', 'web-to-blocked']));
    expect(await sets()).toEqual([expect.stringMatching(/^vgb-vif1\.0-i4-[0-9a-f]{6}$/), expect.stringMatching(/^vgb-vif1\.0-i6-/), expect.stringMatching(/^vgb-vif1\.0-o4-/), expect.stringMatching(/^vgb-vif1\.0-o6-/)]);
    // Adjacent prefixes arrive merged into ranges, which ipset stores as the fewest CIDRs.
    const in4 = (await sets())[0] ?? '';
    const test = async (address: string) => (await lab.inDom0('ipset', 'test', in4, address).then(() => 0, () => 1));
    expect([await test('100.70.3.4'), await test('198.19.255.1'), await test('100.63.255.255'), await test('8.8.8.8')]).toEqual([0, 0, 1, 1]);
    const status = JSON.parse((await xen.cli(['status', '--json'])).stdout) as { ports: { vif: string; state: string }[] };
    expect(status.ports.map((port) => [port.vif, port.state])).toEqual([['vif1.0', 'protected'], ['vif2.0', 'protected']]);
    // The neighbour's chains were not rewritten: only web's chains reference the sets.
    expect((await xen.save('filter')).split('\n').filter((line) => line.includes('--match-set')).every((line) => line.startsWith('-A vif-guard-i-vif1.0 ') || line.startsWith('-A vif-guard-o-vif1.0 '))).toBe(true);
  }, 90_000);

  it('--both also drops what the guest sends to them; a rewritten list is a new set and the old one goes', async () => {
    const old = await sets();
    const saves = xen.traceTools([`iptables-${variant}-save`, `ip6tables-${variant}-save`]);
    const result = await xen.cli(['block', 'web', '--cidr', `${BLOCKED}/32`, '--name', 'uplink', '--both']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(saves()).toEqual([]);
    const arrived = await exchange();
    expect(arrived.web).toEqual(new Set(['internet-to-web']));
    expect(arrived.uplink).toEqual(new Set(['web-to-internet']));
    const now = await sets();
    expect(now).toHaveLength(4);
    expect(now.filter((name) => old.includes(name))).toEqual([]);
    // --dry-run prints the sets and chains it would write, and changes nothing.
    // Without iptables-save's "# Generated ... on <date>" lines, which change every second.
    const saved = async () => (await xen.save('filter')).split('\n').filter((line) => !line.startsWith('#')).join('\n');
    const before = await saved();
    const dry = await xen.cli(['block', 'web', '--cidr', '192.0.2.0/24', '--name', 'uplink', '--both', '--dry-run']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stderr).toMatch(/ipset restore:\n(create .*\n)*create vgb-vif1\.0-o4-[0-9a-f]{6} hash:net family inet /);
    // What the guest sends to a blocked destination is dropped in its from-guest chain.
    expect(dry.stderr).toMatch(/\n-A vif-guard-i-vif1\.0 -m set --match-set vgb-vif1\.0-o4-[0-9a-f]{6} dst -j DROP\n/);
    expect(await sets()).toEqual(now);
    expect(await saved()).toBe(before);
  }, 90_000);

  it('hooks keep the lists: offline destroys the guest\'s sets, online brings them back', async () => {
    // From this boot's cache, like hooks without lists: neither table is read (4,000 guests: seconds).
    const saves = xen.traceTools([`iptables-${variant}-save`, `ip6tables-${variant}-save`]);
    expect((await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 1, 0)).exitCode, xen.hotplugLog()).toBe(0);
    expect(await sets()).toEqual([]);
    expect((await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 1, 0)).exitCode, xen.hotplugLog()).toBe(0);
    expect(await sets()).toHaveLength(4);
    // A guest without lists comes and goes; the blocked one's sets stay.
    expect((await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 2, 0)).exitCode, xen.hotplugLog()).toBe(0);
    expect((await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 2, 0)).exitCode, xen.hotplugLog()).toBe(0);
    expect(await sets()).toHaveLength(4);
    expect(saves()).toEqual([]);
    const arrived = await exchange();
    expect(arrived.web).toEqual(new Set(['internet-to-web']));
    expect(arrived.uplink).toEqual(new Set(['web-to-internet']));
    // And sync has nothing to change.
    expect((await xen.cli(['sync'])).stderr).toContain('nothing to do');
  }, 90_000);

  it('a malformed zone is refused with its line numbers and changes nothing; unblock removes the lists and their sets', async () => {
    const before = await sets();
    const zone = join(xen.root, 'bad.zone');
    writeFileSync(zone, '198.18.0.0/15\n10.0.0.0/33\n');
    const bad = await xen.cli(['block', 'web', '--zone', zone]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain(`${zone}: 1 malformed line(s), nothing applied: line 2: \`10.0.0.0/33\``);
    expect(await sets()).toEqual(before);
    const saves = xen.traceTools([`iptables-${variant}-save`, `ip6tables-${variant}-save`]);
    expect((await xen.cli(['unblock', 'web'])).exitCode).toBe(0);
    expect(saves()).toEqual([]);
    expect(await sets()).toEqual([]);
    const arrived = await exchange();
    expect(arrived.web).toEqual(new Set(['internet-to-web', 'blocked-source-to-web']));
    expect(arrived.uplink).toEqual(new Set(['web-to-internet', 'web-to-blocked']));
    expect(await xen.save('filter')).not.toContain('--match-set');
  }, 90_000);
});
