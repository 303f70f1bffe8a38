import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAN_USE_NETNS, VARIANTS } from '../helpers/env.js';
import { Dom0Lab, listen, sendFrame, type Datagram, type Frame } from '../helpers/netns.js';
import { FakeXenHost, foreignLines } from '../helpers/xen.js';

// Rules and counters that belong to someone else (fail2ban, the admin): vif-guard must leave them byte for byte.
// The conntrack match also turns connection tracking on in the namespace, as any stateful firewall does.
const FOREIGN = `*filter
:f2b-sshd - [0:0]
[7:700] -A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd
[3:300] -A f2b-sshd -s 198.51.100.7/32 -j REJECT --reject-with icmp-port-unreachable
[5:500] -A FORWARD -s 192.0.2.0/24 -j ACCEPT
[4:400] -A OUTPUT -o lo -m conntrack --ctstate INVALID -j DROP
COMMIT
*raw
[2:200] -A PREROUTING -s 203.0.113.0/24 -j CT --notrack
COMMIT
`;

const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

/** iptables-save's "# Generated ... on <date>" lines differ between two calls; nothing else may. */
const withoutComments = (save: string) => save.split('\n').filter((line) => !line.startsWith('#')).join('\n');

describe.skipIf(!CAN_USE_NETNS).each(VARIANTS)('Xen vif-bridge + vif-guard hook on iptables-%s', (variant) => {
  const subnet = variant === 'nft' ? '10.77.1' : '10.77.2';
  const lab = new Dom0Lab(subnet);
  let xen: FakeXenHost;
  let foreignBefore: { filter: string[]; raw: string[] };
  let dom0Mac = '';

  /** Send frames with listeners on web (5000, 68) and dom0 (5000, 67, 68); return which tokens arrived where. */
  async function exchange(frames: Frame[]): Promise<{ web: Datagram[]; dom0: Datagram[] }> {
    const webDone = await listen(lab, lab.guest('web').ns, [5000, 68], 4.5);
    const dom0Done = await listen(lab, lab.dom0, [5000, 67, 68], 4.5);
    for (const frame of frames) await sendFrame(lab, frame);
    return { web: await webDone(), dom0: await dom0Done() };
  }

  function attackMatrix(): Frame[] {
    const web = lab.guest('web');
    const evil = lab.guest('evil');
    return [
      { from: evil, dstMac: web.mac, src: evil.address, dst: web.address, sport: 4000, dport: 5000, token: 'own-to-neighbour' },
      { from: evil, dstMac: dom0Mac, src: evil.address, dst: lab.dom0Ip, sport: 4000, dport: 5000, token: 'own-to-dom0' },
      { from: evil, dstMac: web.mac, src: `${subnet}.66`, dst: web.address, sport: 4000, dport: 5000, token: 'spoof-to-neighbour' },
      { from: evil, dstMac: dom0Mac, src: web.address, dst: lab.dom0Ip, sport: 4000, dport: 5000, token: 'spoof-to-dom0' },
      { from: evil, dstMac: dom0Mac, src: `${subnet}.65`, dst: lab.dom0Ip, sport: 4000, dport: 5000, token: 'spoof-neighbours-range' },
      { from: evil, dstMac: BROADCAST_MAC, src: '0.0.0.0', dst: '255.255.255.255', sport: 68, dport: 67, token: 'dhcp-discover' },
      { from: evil, dstMac: BROADCAST_MAC, src: evil.address, dst: '255.255.255.255', sport: 67, dport: 68, token: 'rogue-dhcp-offer' },
      { from: web, dstMac: dom0Mac, src: `${subnet}.65`, dst: lab.dom0Ip, sport: 4000, dport: 5000, token: 'second-address-to-dom0' },
    ];
  }

  const tokens = (datagrams: Datagram[]) => new Set(datagrams.map((d) => d.token));

  beforeAll(async () => {
    await lab.create();
    dom0Mac = await lab.bridgeMac();
    await lab.addGuest('web', 'vif1.0', 11, true);
    await lab.addGuest('evil', 'vif2.0', 12, true);
    await lab.inNs(lab.guest('web').ns, 'ip', 'addr', 'add', `${subnet}.65/24`, 'dev', 'eth0');
    xen = new FakeXenHost(lab, variant);
    await xen.setup();
    await xen.restore(FOREIGN);
    foreignBefore = { filter: foreignLines(await xen.save('filter', true)), raw: foreignLines(await xen.save('raw', true)) };
    xen.defineVif(1, 0, 'web', { ip: `${subnet}.11 ${subnet}.64/30`, mac: lab.guest('web').mac, bridge: 'xenbr0', vifname: 'web01' });
    xen.defineVif(2, 0, 'evil', { ip: `${subnet}.12`, mac: lab.guest('evil').mac, bridge: 'xenbr0' });
  }, 180_000);

  afterAll(async () => {
    await lab.destroy();
    xen?.cleanup();
  });

  it('control: without vif-guard every attack in the matrix arrives', async () => {
    const arrived = await exchange(attackMatrix());
    expect(tokens(arrived.web)).toEqual(new Set(['own-to-neighbour', 'spoof-to-neighbour', 'rogue-dhcp-offer']));
    expect(tokens(arrived.dom0)).toEqual(
      new Set(['own-to-dom0', 'spoof-to-dom0', 'spoof-neighbours-range', 'dhcp-discover', 'rogue-dhcp-offer', 'second-address-to-dom0']),
    );
    // Real Xen creates the vif down and off the bridge; vif-bridge does the rest.
    for (const vif of ['vif1.0', 'vif2.0']) await lab.inDom0('ip', 'link', 'set', vif, 'nomaster', 'down');
  }, 60_000);

  it('online through the stock vif-bridge protects each vif and reports connected', async () => {
    for (const domid of [1, 2]) {
      const result = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], domid, 0);
      expect(result.exitCode, xen.hotplugLog()).toBe(0);
      expect(xen.xsRead(`backend/vif/${domid}/0/hotplug-status`)).toBe('connected');
    }
    const filter = await xen.save('filter');
    expect(filter).toContain(':vif-guard-i-web01 ');
    expect(filter).toContain(':vif-guard-i-vif2.0 ');
    expect(filter).toContain(`-A vif-guard-i-web01 -s ${subnet}.64/30 -j RETURN`);
    expect(filter.split('\n').filter((line) => line.startsWith('-A FORWARD'))[0]).toBe('-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd');
    const notrack = (await lab.inDom0('nft', 'list', 'table', 'bridge', 'vif_guard')).stdout;
    expect(notrack).toMatch(/set guarded_[0-9a-f]{12} \{[^}]*elements = \{ [^}]*"vif2\.0" comment "g=/);
    expect(notrack).toMatch(/set guarded_[0-9a-f]{12} \{[^}]*elements = \{ [^}]*"web01" comment "g=web /);
    expect(notrack).toContain(lab.guest('web').mac);
    expect(xen.hotplugLog()).toMatch(/vif-guard: web01 \(guest web, bridge xenbr0, .*\) protected/);
  }, 60_000);

  it('with protection: own addresses and DHCP requests pass; spoofed sources and DHCP offers do not', async () => {
    const arrived = await exchange(attackMatrix());
    expect(tokens(arrived.web)).toEqual(new Set(['own-to-neighbour']));
    expect(tokens(arrived.dom0)).toEqual(new Set(['own-to-dom0', 'dhcp-discover', 'second-address-to-dom0']));
    const filter = await xen.save('filter', true);
    const dropCounter = filter.split('\n').find((line) => line.includes('-A vif-guard-i-vif2.0 -m comment'));
    expect(dropCounter).toMatch(/^\[[1-9]\d*:/);
  }, 60_000);

  it('switched guest traffic leaves no conntrack entry (NOTRACK), traffic to dom0 is still tracked', async () => {
    const web = lab.guest('web');
    const evil = lab.guest('evil');
    await lab.inDom0('conntrack', '-F').nothrow();
    await exchange([
      { from: evil, dstMac: web.mac, src: evil.address, dst: web.address, sport: 4111, dport: 5000, token: 'nt-switched' },
      { from: evil, dstMac: dom0Mac, src: evil.address, dst: lab.dom0Ip, sport: 4112, dport: 5000, token: 'nt-to-dom0' },
    ]);
    const table = (await lab.inDom0('conntrack', '-L', '-p', 'udp')).stdout;
    expect(table).not.toContain('sport=4111');
    expect(table).toContain('sport=4112');
  }, 60_000);

  it('online again changes nothing: no restore is sent, counters stay', async () => {
    const before = withoutComments(await xen.save('filter', true));
    const result = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 2, 0);
    expect(result.exitCode).toBe(0);
    expect(xen.hotplugLog().trimEnd().split('\n').filter((l) => l.includes('vif-guard: vif2.0')).pop()).toContain('already in place');
    expect(withoutComments(await xen.save('filter', true))).toBe(before);
  }, 60_000);

  it('upstream vif-bridge\'s iptables -I FORWARD ... -j ACCEPT above the jump: the next hook puts vif-guard back on top, and spoofing still fails', async () => {
    // What upstream's frob_iptable inserts on every online (xen-hotplug.md 3.4); Debian's scripts do not.
    const web = lab.guest('web');
    const stock = ['FORWARD', '-m', 'physdev', '--physdev-is-bridged', '--physdev-out', 'web01', '-j', 'ACCEPT'];
    await lab.inDom0(`iptables-${variant}`, '-I', ...stock);
    try {
      const result = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 2, 0);
      expect(result.exitCode, xen.hotplugLog()).toBe(0);
      // Without the jump back on top, the stock ACCEPT lets the neighbour's spoofed frame through to web.
      const arrived = await exchange(attackMatrix().filter((frame) => frame.dst === web.address));
      expect(tokens(arrived.web)).toEqual(new Set(['own-to-neighbour']));
      const forward = (await lab.inDom0(`iptables-${variant}`, '-S', 'FORWARD')).stdout.split('\n').filter((line) => line.startsWith('-A '));
      expect(forward.slice(0, 2)).toEqual(['-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd', '-A FORWARD -m physdev --physdev-out web01 --physdev-is-bridged -j ACCEPT']);
      // The same when the online commits something (the guest started again): legacy moves the jump
      // in that commit without reading FORWARD first.
      expect((await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 2, 0)).exitCode, xen.hotplugLog()).toBe(0);
      await lab.inDom0(`iptables-${variant}`, '-I', ...stock);
      expect((await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 2, 0)).exitCode, xen.hotplugLog()).toBe(0);
      expect(tokens((await exchange(attackMatrix().filter((frame) => frame.dst === web.address))).web)).toEqual(new Set(['own-to-neighbour']));
      const again = (await lab.inDom0(`iptables-${variant}`, '-S', 'FORWARD')).stdout.split('\n').filter((line) => line.startsWith('-A '));
      expect(again[0]).toBe('-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd');
      expect(again.filter((line) => line.includes('--physdev-out web01'))).toHaveLength(2);
    } finally {
      // Both stock rules inserted above (at most two; -D fails when none is left).
      for (let i = 0; i < 2; i += 1) await lab.inDom0(`iptables-${variant}`, '-D', ...stock).catch(() => undefined);
    }
  }, 60_000);

  it('fails closed on an invalid ip in xenstore, naming the node and value, and changes nothing', async () => {
    await lab.addGuest('bad', 'vif4.0', 14);
    xen.defineVif(4, 0, 'bad', { ip: `${subnet}.300`, bridge: 'xenbr0' });
    const before = withoutComments(await xen.save('filter', true));
    const result = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 4, 0);
    expect(result.exitCode).not.toBe(0);
    expect(xen.xsRead('backend/vif/4/0/hotplug-status')).toBe('error');
    expect(xen.xsRead('backend/vif/4/0/hotplug-error')).toBe(
      `vif-guard: Expected \`ip\` to be an IPv4/IPv6 address or CIDR, got \`${subnet}.300\` (xenstore backend/vif/4/0/ip)`,
    );
    expect(withoutComments(await xen.save('filter', true))).toBe(before);
  }, 60_000);

  it('fails closed when iptables-restore fails: hotplug-error says why', async () => {
    const fakeBin = mkdtempSync(join(tmpdir(), 'vif-guard-fakebin-'));
    const tool = join(fakeBin, `iptables-${variant}-restore`);
    writeFileSync(tool, '#!/bin/sh\ncat >/dev/null\necho "iptables-restore: line 3 failed" >&2\nexit 1\n');
    chmodSync(tool, 0o755);
    await lab.addGuest('nofw', 'vif5.0', 15);
    xen.defineVif(5, 0, 'nofw', { ip: `${subnet}.15`, bridge: 'xenbr0' });
    try {
      const result = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 5, 0, { VIF_GUARD_BIN_DIR: fakeBin });
      expect(result.exitCode).not.toBe(0);
      expect(xen.xsRead('backend/vif/5/0/hotplug-status')).toBe('error');
      expect(xen.xsRead('backend/vif/5/0/hotplug-error')).toMatch(/^vif-guard: iptables-.*-restore failed: iptables-restore: line 3 failed \(payload line 3: /);
      expect(await xen.save('filter')).not.toContain('vif5.0');
    } finally {
      rmSync(fakeBin, { recursive: true, force: true });
    }
  }, 60_000);

  it('protects the HVM -emu tap on add and releases it on remove', async () => {
    await lab.addGuest('hvm', 'vif6.0-emu', 16);
    xen.defineVif(6, 0, 'hvm', { ip: `${subnet}.16`, bridge: 'xenbr0' });
    const env = { INTERFACE: 'vif6.0-emu', XENBUS_PATH: 'backend/vif/6/0' };
    const add = await xen.hotplug('vif-bridge', ['add', 'type_if=tap'], 6, 0, env);
    expect(add.exitCode, xen.hotplugLog()).toBe(0);
    expect(await xen.save('filter')).toContain(`-A vif-guard-i-vif6.0-emu -s ${subnet}.16/32 -j RETURN`);
    const remove = await xen.hotplug('vif-bridge', ['remove', 'type_if=tap'], 6, 0, env);
    expect(remove.exitCode).toBe(0);
    expect(await xen.save('filter')).not.toContain('vif6.0-emu');
  }, 60_000);

  it('the standalone vif-guard script bridges the vif and protects it', async () => {
    await lab.addGuest('solo', 'vif7.0', 17);
    xen.defineVif(7, 0, 'solo', { ip: `${subnet}.17`, bridge: 'xenbr0' });
    const result = await xen.hotplug('vif-guard', ['online', 'type_if=vif'], 7, 0);
    expect(result.exitCode, xen.hotplugLog()).toBe(0);
    expect(xen.xsRead('backend/vif/7/0/hotplug-status')).toBe('connected');
    expect(await xen.save('filter')).toContain(`-A vif-guard-i-vif7.0 -s ${subnet}.17/32 -j RETURN`);
    const off = await xen.hotplug('vif-guard', ['offline', 'type_if=vif'], 7, 0);
    expect(off.exitCode).toBe(0);
    expect(await xen.save('filter')).not.toContain('vif7.0');
  }, 60_000);

  it('offline finds a renamed vif by its xenstore path even when the vifname node is gone', async () => {
    await lab.addGuest('ren', 'vif8.0', 18);
    xen.defineVif(8, 0, 'ren', { ip: `${subnet}.18`, bridge: 'xenbr0', vifname: 'ren01', mac: lab.guest('ren').mac });
    expect((await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 8, 0)).exitCode).toBe(0);
    expect(await xen.save('filter')).toContain(':vif-guard-i-ren01 ');
    xen.xsRemove('backend/vif/8/0/vifname');
    const off = await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 8, 0);
    expect(off.exitCode).toBe(0);
    expect(await xen.save('filter')).not.toContain('ren01');
    expect((await lab.inDom0('nft', 'list', 'table', 'bridge', 'vif_guard')).stdout).not.toContain('ren01');
  }, 60_000);

  it('offline removes exactly that vif\'s rules, and succeeds again when they are gone', async () => {
    const first = await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 2, 0);
    expect(first.exitCode).toBe(0);
    const filter = await xen.save('filter');
    expect(filter).not.toContain('vif2.0');
    expect(filter).toContain(':vif-guard-i-web01 ');
    expect((await lab.inDom0(`ip6tables-${variant}-save`, '-t', 'filter')).stdout).not.toContain('vif2.0');
    const bridge = (await lab.inDom0('nft', 'list', 'table', 'bridge', 'vif_guard')).stdout;
    expect(bridge).not.toContain('vif2.0');
    expect(bridge).toContain('"web01" . ');
    const second = await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 2, 0);
    expect(second.exitCode).toBe(0);
  }, 60_000);

  it('left every foreign rule, chain and counter byte for byte as it was', async () => {
    expect(foreignLines(await xen.save('filter', true))).toEqual(foreignBefore.filter);
    expect(foreignLines(await xen.save('raw', true))).toEqual(foreignBefore.raw);
  });

  it('remove-rules (what install.sh --uninstall runs) removes every vif-guard rule and nothing else', async () => {
    const cli = ['env', `VIF_GUARD_CONFIG=${xen.configPath}`, `VIF_GUARD_LOCK=${join(xen.root, 'run', 'cli.lock')}`, 'node', 'dist/bundle/vif-guard.cjs', 'remove-rules'];
    const dry = await lab.inDom0(...cli, '--dry-run');
    expect(dry.stderr).toContain('-X vif-guard-i-web01');
    expect(await xen.save('filter')).toContain('vif-guard-i-web01');
    await lab.inDom0(...cli);
    expect(await xen.save('filter')).not.toContain('vif-guard');
    expect(await xen.save('raw')).not.toContain('vif-guard');
    expect((await lab.inDom0('nft', 'list', 'tables')).stdout).not.toContain('vif_guard');
    expect(foreignLines(await xen.save('filter', true))).toEqual(foreignBefore.filter);
    expect(foreignLines(await xen.save('raw', true))).toEqual(foreignBefore.raw);
  }, 60_000);
});
