import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CAN_USE_NETNS, VARIANTS } from '../helpers/env.js';
import { Dom0Lab, sendFrame } from '../helpers/netns.js';
import { FakeXenHost, foreignLines } from '../helpers/xen.js';

const FOREIGN = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd
-A f2b-sshd -s 198.51.100.7/32 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -s 192.0.2.0/24 -j ACCEPT
COMMIT
`;

const ours = (save: string) => save.split('\n').filter((line) => line.includes('vif-guard')).sort();

describe.skipIf(!CAN_USE_NETNS).each(VARIANTS)('sync and status on iptables-%s', (variant) => {
  const subnet = variant === 'nft' ? '10.79.1' : '10.79.2';
  const lab = new Dom0Lab(subnet);
  let xen: FakeXenHost;
  let configDir: string;

  async function syncJson(...extra: string[]) {
    const result = await xen.cli(['sync', '--json', ...extra]);
    expect(result.exitCode, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as { restoreLines: number; added: string[]; released: string[]; updated: string[]; notrackChanged: boolean; warnings: string[] };
  }

  beforeAll(async () => {
    await lab.create();
    xen = new FakeXenHost(lab, variant);
    await xen.setup();
    configDir = join(xen.root, 'etc-xen');
    mkdirSync(configDir);
    xen.writeConfig(`[general]\nbackend = ${variant}\n[xen]\nxen_config_dir = ${configDir}\n`);
    await lab.inDom0(`iptables-${variant}-restore`, '--noflush').stdin.end(FOREIGN);
    for (const [domid, name] of [[1, 'alpha'], [2, 'beta'], [3, 'gamma']] as const) {
      await lab.addGuest(name, `vif${domid}.0`, 10 + domid);
      xen.defineVif(domid, 0, name, { ip: `${subnet}.${10 + domid}`, bridge: 'xenbr0', mac: lab.guest(name).mac, ...(domid === 3 ? { vifname: 'gamma0' } : {}) });
      const result = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], domid, 0);
      expect(result.exitCode, xen.hotplugLog()).toBe(0);
    }
  }, 180_000);

  afterAll(async () => {
    await lab.destroy();
    xen?.cleanup();
  });

  it('a sync right after the hooks finds nothing to do', async () => {
    const dry = await xen.cli(['sync', '--dry-run']);
    const summary = await syncJson();
    expect(summary, dry.stderr).toMatchObject({ restoreLines: 0, added: [], released: [], updated: [], bridgeChanged: false });
  }, 60_000);

  it('after the firewall is reloaded behind its back, sync restores exactly the previous state; a second sync plans nothing', async () => {
    const before = ours(await xen.save('filter'));
    // Counters start again from zero in a rebuilt table; everything else must be identical.
    // Chains may also come back in another order; every rule carries its chain's digest, so sorted lines compare.
    const bridgeTable = () => xen.bridgeState();
    const notrackBefore = await bridgeTable();
    // What `netfilter-persistent reload` does: replace the filter table with the saved (foreign) rules.
    await lab.inDom0(`iptables-${variant}-restore`).stdin.end(FOREIGN);
    await lab.inDom0('nft', 'delete', 'table', 'bridge', 'vif_guard');
    expect(ours(await xen.save('filter'))).toEqual([]);

    const dry = await xen.cli(['sync', '--dry-run']);
    expect(dry.stderr).toContain('would protect gamma0 vif1.0 vif2.0');
    expect(ours(await xen.save('filter'))).toEqual([]);

    const first = await syncJson();
    expect(first.added).toEqual(['gamma0', 'vif1.0', 'vif2.0']);
    expect(ours(await xen.save('filter'))).toEqual(before);
    expect(await bridgeTable()).toBe(notrackBefore);
    expect(await syncJson()).toMatchObject({ restoreLines: 0, bridgeChanged: false });
    expect(foreignLines(await xen.save('filter')).sort()).toEqual(foreignLines(FOREIGN).sort());
  }, 60_000);

  it('status --json counts a spoofing attempt against the guest that made it; --prometheus writes the same', async () => {
    const beta = lab.guest('beta');
    for (let i = 0; i < 3; i += 1) {
      await sendFrame(lab, { from: beta, dstMac: lab.guest('alpha').mac, src: `${subnet}.99`, dst: lab.guest('alpha').address, sport: 4000, dport: 5000, token: `spoof-${i}` });
    }
    const prom = join(xen.root, 'vif-guard.prom');
    const result = await xen.cli(['status', '--json', '--prometheus', prom]);
    expect(result.exitCode, result.stderr).toBe(0);
    const rows = (JSON.parse(result.stdout) as { ports: { vif: string; guest: string; state: string; spoofed: { packets: number; bytes: number } }[] }).ports;
    expect(rows.map((row) => [row.vif, row.guest, row.state])).toEqual([
      ['gamma0', 'gamma', 'protected'],
      ['vif1.0', 'alpha', 'protected'],
      ['vif2.0', 'beta', 'protected'],
    ]);
    expect(rows.find((row) => row.vif === 'vif2.0')?.spoofed.packets).toBeGreaterThanOrEqual(3);
    expect(rows.find((row) => row.vif === 'vif1.0')?.spoofed.packets).toBe(0);
    const text = readFileSync(prom, 'utf8');
    expect(text).toMatch(/^vif_guard_dropped_packets_total\{guest="beta",vif="vif2.0",reason="source_ipv4"\} [3-9]\d*$/m);
    expect(text).toContain('vif_guard_port_protected{guest="alpha",vif="vif1.0",state="protected"} 1');
  }, 60_000);

  it('status --problems shows only the guest that spoofed, a name narrows it, and the table ends with a count per state', async () => {
    const problems = await xen.cli(['status', '--problems']);
    expect(problems.exitCode, problems.stderr).toBe(0);
    expect(problems.stdout.trim().split('\n').slice(1).map((line) => line.split(/\s+/)[1])).toEqual(['vif2.0']);
    expect(problems.stderr).toContain(`vif-guard: 3 port(s): 3 protected; 1 sent traffic that was dropped; 1 shown (iptables-${variant})`);
    const alpha = await xen.cli(['status', 'alpha', '--json']);
    expect((JSON.parse(alpha.stdout) as { ports: { vif: string }[] }).ports.map((row) => row.vif)).toEqual(['vif1.0']);
    expect((await xen.cli(['status', 'alpha', '--problems'])).stderr).toContain('no problems: 3 port(s)');
    const unknown = await xen.cli(['status', 'delta']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('no guest port is named delta');
  }, 60_000);

  it('status shows drift when a guest\'s chain was edited by hand, and sync repairs it', async () => {
    await lab.inDom0(`iptables-${variant}`, '-I', 'vif-guard-i-vif1.0', '1', '-j', 'RETURN');
    const drift = JSON.parse((await xen.cli(['status', '--json'])).stdout) as { ports: { vif: string; state: string }[] };
    expect(drift.ports.find((row) => row.vif === 'vif1.0')?.state).toBe('drift');
    expect((await syncJson()).updated).toEqual(['vif1.0']);
    const fixed = JSON.parse((await xen.cli(['status', '--json'])).stdout) as { ports: { vif: string; state: string }[] };
    expect(fixed.ports.every((row) => row.state === 'protected')).toBe(true);
  }, 60_000);

  it('a domU config\'s ip= wins over the running domain\'s, with a warning; a domain that is gone is released', async () => {
    writeFileSync(join(configDir, 'alpha.cfg'), `name = "alpha"\nvif = [ 'mac=${lab.guest('alpha').mac},ip=${subnet}.11 ${subnet}.200,bridge=xenbr0' ]\n`);
    xen.xsRemove('backend/vif/2');
    xen.xsRemove('/local/domain/2');
    const summary = await syncJson();
    expect(summary.updated).toEqual(['vif1.0']);
    expect(summary.released).toEqual(['vif2.0']);
    expect(summary.warnings.join('\n')).toContain(`vif1.0: ip in ${join(configDir, 'alpha.cfg')} line 2 (${subnet}.11/32 ${subnet}.200/32) differs from the running domain's (${subnet}.11/32); using the config`);
    expect(await xen.save('filter')).toContain(`-A vif-guard-i-vif1.0 -s ${subnet}.200/32 -j RETURN`);
    expect(await xen.save('filter')).not.toContain('vif2.0');
  }, 60_000);

  it('a guest with more IPv6 prefixes than one advertisement rule takes may advertise nothing, and sync says so', async () => {
    const many = Array.from({ length: 21 }, (_, i) => `2001:db8:${(i + 1).toString(16)}::/64`).join(' ');
    writeFileSync(join(configDir, 'alpha.cfg'), `name = "alpha"\nvif = [ 'mac=${lab.guest('alpha').mac},ip=${subnet}.11 ${many},bridge=xenbr0' ]\n`);
    const summary = await syncJson();
    expect(summary.warnings.join('\n')).toContain('vif1.0 (alpha): its IPv6 addresses need more than 20 neighbour-advertisement patterns');
    const save6 = (await lab.inDom0(`ip6tables-${variant}-save`, '-t', 'filter')).stdout;
    expect(save6).toContain('-A vif-guard-i-vif1.0 -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j DROP');
    // Back to one address: its advertisements are checked against it again.
    writeFileSync(join(configDir, 'alpha.cfg'), `name = "alpha"\nvif = [ 'mac=${lab.guest('alpha').mac},ip=${subnet}.11 ${subnet}.200,bridge=xenbr0' ]\n`);
    expect((await syncJson()).warnings.join('\n')).not.toContain('neighbour-advertisement');
    expect((await lab.inDom0(`ip6tables-${variant}-save`, '-t', 'filter')).stdout).not.toContain('-A vif-guard-i-vif1.0 -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j DROP');
  }, 60_000);

  it('a bad domU config stops sync before anything changes', async () => {
    writeFileSync(join(configDir, 'bad.cfg'), `name = "bad"\nvif = [ 'ip=10.0.0.1 -j ACCEPT' ]\n`);
    const before = ours(await xen.save('filter'));
    const result = await xen.cli(['sync']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim().split('\n').pop()).toBe(`vif-guard: Expected \`ip\` to be an IPv4/IPv6 address or CIDR, got \`-j\` (${join(configDir, 'bad.cfg')} line 2)`);
    expect(ours(await xen.save('filter'))).toEqual(before);
  }, 60_000);

  it('a guest whose hook runs while sync reads the guests stays protected (sync reads them under its lock)', async () => {
    rmSync(join(configDir, 'bad.cfg'), { force: true });
    // A slow last step of sync's inventory (vzlist), which says when it starts.
    const slow = join(xen.root, 'slow-bin');
    const started = join(xen.root, 'vzlist-started');
    mkdirSync(slow, { recursive: true });
    writeFileSync(join(slow, 'vzlist'), `#!/bin/sh\ntouch ${started}\nsleep 3\n`, { mode: 0o755 });
    await lab.addGuest('late', 'vif4.0', 14);
    const syncing = xen.cli(['sync', '--json'], { VIF_GUARD_BIN_DIR: slow });
    for (let i = 0; i < 200 && !existsSync(started); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(existsSync(started)).toBe(true);
    // The guest starts now: xenstore has it only after sync read xenstore.
    xen.defineVif(4, 0, 'late', { ip: `${subnet}.14`, bridge: 'xenbr0', mac: lab.guest('late').mac });
    const online = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 4, 0);
    expect(online.exitCode, xen.hotplugLog()).toBe(0);
    const synced = await syncing;
    expect(synced.exitCode, synced.stderr).toBe(0);
    // Before, sync committed the list it had read before the hook, and released the new guest.
    expect(JSON.parse(synced.stdout).released).toEqual([]);
    expect(ours(await xen.save('filter')).some((line) => line.startsWith('-A vif-guard-i-vif4.0 '))).toBe(true);
    const offline = await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 4, 0);
    expect(offline.exitCode, xen.hotplugLog()).toBe(0);
    xen.xsRemove('backend/vif/4');
  }, 90_000);
});
