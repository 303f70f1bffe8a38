import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { $ } from 'zx';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { backendName, BACKENDS, CAN_USE_NETNS, iptablesOf } from '../helpers/env.js';
import { Dom0Lab, listen, sendFrame } from '../helpers/netns.js';
import { FakeXenHost } from '../helpers/xen.js';

$.quiet = true;

const ROUNDS = 3;
const DRIFT = resolve('test/helpers/drift.mjs');
const mac = (n: number) => `00:16:3e:00:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;

// Someone else's state, in every place vif-guard writes: it must stay byte for byte, counters included.
const FOREIGN_FILTER = `*filter
:f2b-sshd - [0:0]
[7:700] -A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd
[3:300] -A f2b-sshd -s 198.51.100.7/32 -j REJECT --reject-with icmp-port-unreachable
[5:500] -A FORWARD -s 192.0.2.0/24 -j ACCEPT
[9:900] -A FORWARD -m set --match-set blocklist src -j DROP
COMMIT
`;
const FOREIGN_NFT = `table inet admin {
  chain input { type filter hook input priority 10; policy accept; tcp dport 2222 counter packets 11 bytes 1100 drop; }
}
`;

describe.skipIf(!CAN_USE_NETNS).each(BACKENDS.map((backend) => [backendName(backend), backend] as const))('reliability on %s', (_name, backend) => {
  const subnet = `10.84.${BACKENDS.indexOf(backend) + 1}`;
  const lab = new Dom0Lab(subnet);
  let xen: FakeXenHost;
  // The iptables variant foreign rules live in (and, on the iptables backends, vif-guard's own).
  const variant = iptablesOf(backend);
  const nftables = backend === 'nftables';

  const foreign = async () => ({
    filter: (await lab.inDom0(`iptables-${variant}-save`, '-c', '-t', 'filter')).stdout.split('\n').filter((l) => l && !l.startsWith('#') && !l.includes('vif-guard') && !/^:(INPUT|FORWARD|OUTPUT) /.test(l)),
    filter6: (await lab.inDom0(`ip6tables-${variant}-save`, '-c', '-t', 'filter')).stdout.split('\n').filter((l) => l && !l.startsWith('#') && !l.includes('vif-guard') && !/^:(INPUT|FORWARD|OUTPUT) /.test(l)),
    ipset: (await lab.inDom0('ipset', 'save')).stdout,
    nft: (await lab.inDom0('nft', 'list', 'table', 'inet', 'admin')).stdout,
  });

  /** Lines a full rebuild for these ports would send: none means nothing lost, nothing duplicated. */
  async function drift(ports: number[]): Promise<string[]> {
    const json = JSON.stringify(ports.map((n) => ({ ifname: `vif${n}.0`, guest: `g${n}`, mac: mac(n), ip: `10.${100 + (n >> 8)}.${n & 255}.1` })));
    return JSON.parse((await lab.inDom0('node', DRIFT, backend, json)).stdout) as string[];
  }

  /** One hook, as vif-guard.hook calls it, inside the dom0's mount namespace (private /run and its locks). */
  const hook = (kind: 'up' | 'down', n: number) =>
    xen.inMountNs([`/opt/vif-guard/lib/vif-guard/bin/vif-${kind}`, '--command', kind === 'up' ? 'online' : 'offline', '--dev', `vif${n}.0`, '--type-if', 'vif',
      ...(kind === 'up' ? ['--ip', `10.${100 + (n >> 8)}.${n & 255}.1`, '--mac', mac(n), '--bridge', 'xenbr0', '--guest', `g${n}`] : [])]);

  beforeAll(async () => {
    await lab.create();
    xen = new FakeXenHost(lab, backend);
    await xen.setup();
    await lab.inDom0('ipset', 'create', 'blocklist', 'hash:net', 'counters');
    await lab.inDom0('ipset', 'add', 'blocklist', '203.0.113.0/24', 'packets', '4', 'bytes', '400');
    await xen.restore(FOREIGN_FILTER);
    await lab.inDom0(`ip6tables-${variant}`, '-A', 'FORWARD', '-s', '2001:db8:dead::/48', '-j', 'DROP');
    const nftFile = join(xen.root, 'admin.nft');
    writeFileSync(nftFile, FOREIGN_NFT);
    await lab.inDom0('nft', '-f', nftFile);
  }, 180_000);

  afterAll(async () => {
    await lab.destroy();
    xen?.cleanup();
  });

  it(`${ROUNDS} rounds of 64 hooks at once (new vifs, the same vif twice, offlines) leave exactly the full-rebuild state`, async () => {
    const before = await foreign();
    // Sixteen guests already running, so that every round also has offlines.
    const initial = Array.from({ length: 16 }, (_, i) => 1000 + i);
    for (const n of initial) expect((await hook('up', n)).exitCode).toBe(0);
    let up = new Set<number>(initial);
    let hooks = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      const fresh = Array.from({ length: 32 }, (_, i) => round * 32 + i + 1);
      const twice = fresh.slice(0, 16);
      const leaving = [...up].slice(0, 16);
      const results = await Promise.all([...fresh.map((n) => hook('up', n)), ...twice.map((n) => hook('up', n)), ...leaving.map((n) => hook('down', n))]);
      hooks += results.length;
      for (const result of results) {
        expect(result.exitCode, result.stderr).toBe(0);
        expect(result.stderr).not.toMatch(/xtables lock|Resource temporarily unavailable/);
      }
      up = new Set([...[...up].filter((n) => !leaving.includes(n)), ...fresh]);
      expect(await drift([...up])).toEqual([]);
    }
    expect(hooks).toBe(ROUNDS * 64);
    expect(await foreign()).toEqual(before);
  }, 600_000);

  it('1,000 vif events leave foreign rules, chains, sets, nft tables and their counters byte for byte', async () => {
    const before = await foreign();
    const script = join(xen.root, 'events.mjs');
    writeFileSync(script, `
const { applyPortChange } = await import(${JSON.stringify(resolve('dist/lib/core/engine.js'))});
const { createRunner } = await import(${JSON.stringify(resolve('dist/lib/runner.js'))});
const { DEFAULT_SETTINGS } = await import(${JSON.stringify(resolve('dist/lib/config/settings.js'))});
const { parseAddressList } = await import(${JSON.stringify(resolve('dist/lib/guest/validate.js'))});
const ctx = { runner: createRunner(), settings: { ...DEFAULT_SETTINGS, backend: '${backend}' }, lockPath: ${JSON.stringify(join(xen.root, 'run', 'events.lock'))}, log: () => {} };
for (let i = 0; i < 1000; i += 1) {
  const n = 500 + (i % 20);
  const mac = '00:16:3e:01:00:' + (n & 255).toString(16).padStart(2, '0');
  if (Math.floor(i / 20) % 2 === 0) await applyPortChange(ctx, { kind: 'up', port: { ifname: 'vif' + n + '.0', guest: 'e' + n, bridge: 'xenbr0', mac, addresses: parseAddressList('10.200.' + (n & 255) + '.1', { source: 'events' }) } });
  else await applyPortChange(ctx, { kind: 'down', ifname: 'vif' + n + '.0' });
}
console.log('done');
`);
    const result = await lab.inDom0('node', script);
    expect(result.stdout.trim()).toBe('done');
    expect(await foreign()).toEqual(before);
  }, 600_000);

  it('a hook waits for another program holding the xtables lock, and says so clearly when the wait is too long', async () => {
    if (backend !== 'legacy') return; // nft transactions (iptables-nft, nftables) take no xtables lock: they serialise in the kernel.
    const held = await xen.inMountNs(['sh', '-c', 'flock /run/xtables.lock sleep 3 & sleep 0.3; start=$(date +%s); /opt/vif-guard/lib/vif-guard/bin/vif-up --command online --dev vif900.0 --ip 10.9.0.1 --bridge xenbr0; echo "exit=$? waited=$(( $(date +%s) - start ))"']);
    const [, exit, waited] = /exit=(\d+) waited=(\d+)/.exec(held.stdout) ?? [];
    expect(exit, held.stderr).toBe('0');
    expect(Number(waited)).toBeGreaterThanOrEqual(2);
    xen.writeConfig(`[general]\nbackend = ${backend}\nlock_timeout = 1\n`);
    try {
      const timedOut = await xen.inMountNs(['sh', '-c', 'flock /run/xtables.lock sleep 4 & sleep 0.3; /opt/vif-guard/lib/vif-guard/bin/vif-up --command online --dev vif901.0 --ip 10.9.0.2 --bridge xenbr0']);
      expect(timedOut.exitCode).not.toBe(0);
      expect(timedOut.stdout.trim()).toMatch(/^iptables-legacy-restore failed: .*lock/i);
    } finally {
      xen.writeConfig(`[general]\nbackend = ${backend}\n`);
    }
  }, 60_000);

  it('another vif-guard holding the lock too long is a clear error, well inside libxl\'s 40 s', async () => {
    xen.writeConfig(`[general]\nbackend = ${backend}\nlock_timeout = 1\n`);
    try {
      const started = Date.now();
      const result = await xen.inMountNs(['sh', '-c', 'flock /run/vif-guard.lock sleep 4 & sleep 0.3; /opt/vif-guard/lib/vif-guard/bin/vif-up --command online --dev vif902.0 --ip 10.9.0.3 --bridge xenbr0']);
      expect(result.exitCode).toBe(6);
      expect(result.stdout.trim()).toBe('another vif-guard held /run/vif-guard.lock for more than 1s');
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      xen.writeConfig(`[general]\nbackend = ${backend}\n`);
    }
  }, 60_000);

  it('faults: a killed or failing commit (iptables-restore, nft -f) changes nothing and the next online converges', async () => {
    const fake = mkdtempSync(join(tmpdir(), 'vif-guard-fault-'));
    // What vif-guard writes to: iptables, or on the nftables backend the whole nft ruleset.
    const state = async () =>
      nftables ? (await lab.inDom0('nft', 'list', 'ruleset')).stdout : (await lab.inDom0(`iptables-${variant}-save`, '-t', 'filter')).stdout.split('\n').filter((l) => !l.startsWith('#')).join('\n');
    expect((await hook('up', 949)).exitCode).toBe(0);
    const before = await state();
    try {
      for (const [name, body] of [
        ['killed', '#!/bin/sh\nhead -c 100 >/dev/null\nkill -9 $$\n'],
        ['no-match', '#!/bin/sh\ncat >/dev/null\necho "iptables-restore v1.8.9: line 5 failed: No chain/target/match by that name" >&2\nexit 1\n'],
      ] as const) {
        // On the nftables backend the double replaces only `nft -f` (the commit); reads go to the real nft.
        const tool = join(fake, nftables ? 'nft' : `iptables-${variant}-restore`);
        writeFileSync(tool, nftables ? body.replace('#!/bin/sh\n', '#!/bin/sh\n[ "$1" = "-f" ] || exec /usr/sbin/nft "$@"\n') : body);
        chmodSync(tool, 0o755);
        const result = await xen.inMountNs(['/opt/vif-guard/lib/vif-guard/bin/vif-up', '--command', 'online', '--dev', 'vif950.0', '--ip', '10.9.5.1', '--bridge', 'xenbr0'], { VIF_GUARD_BIN_DIR: fake });
        expect(result.exitCode, name).toBe(5);
        expect(result.stdout.trim(), name).toMatch(name === 'killed' ? /(restore|nft -f) failed: (killed|.*exit 137|failed|$)/ : /No chain\/target\/match by that name/);
        expect(await state(), name).toBe(before);
      }
      const ok = await hook('up', 950);
      expect(ok.exitCode, ok.stderr).toBe(0);
    } finally {
      rmSync(fake, { recursive: true, force: true });
    }
  }, 60_000);

  it('faults: the firewall flushed between online and offline, or the vif already gone', async () => {
    expect((await hook('up', 960)).exitCode).toBe(0);
    if (nftables) await lab.inDom0('nft', 'flush', 'ruleset');
    else {
      await lab.inDom0(`iptables-${variant}`, '-F', 'vif-guard-in');
      await lab.inDom0(`iptables-${variant}`, '-F', 'vif-guard-fwd');
    }
    const off = await hook('down', 960);
    expect(off.exitCode, off.stderr).toBe(0);
    expect((await lab.inDom0(`iptables-${variant}-save`)).stdout).not.toContain('vif960.0');
    expect((await lab.inDom0('nft', 'list', 'ruleset')).stdout).not.toContain('"vif960.0"');
    const gone = await hook('down', 961);
    expect(gone.exitCode).toBe(0);
    expect((await hook('up', 962)).exitCode).toBe(0);
    if (nftables) expect((await lab.inDom0('nft', 'list', 'ruleset')).stdout).toContain('"vif962.0" . ');
    else expect((await lab.inDom0(`iptables-${variant}-save`)).stdout).toContain('-A vif-guard-fwd -j vif-guard-in');
  }, 60_000);

  it('after all of the above, guests are still protected against each other', async () => {
    const a = await lab.addGuest('ga', 'vif3000.0', 201, true);
    const b = await lab.addGuest('gb', 'vif3001.0', 202, true);
    for (const guest of [a, b]) {
      const up = await xen.inMountNs(['/opt/vif-guard/lib/vif-guard/bin/vif-up', '--command', 'online', '--dev', guest.vif, '--ip', guest.address, '--mac', guest.mac, '--bridge', 'xenbr0']);
      expect(up.exitCode, up.stderr).toBe(0);
    }
    const done = await listen(lab, b.ns, [5000], 2.5);
    await sendFrame(lab, { from: a, dstMac: b.mac, src: a.address, dst: b.address, sport: 4000, dport: 5000, token: 'own' });
    await sendFrame(lab, { from: a, dstMac: b.mac, src: `${subnet}.66`, dst: b.address, sport: 4000, dport: 5000, token: 'spoofed' });
    await sendFrame(lab, { from: a, dstMac: b.mac, src: b.address, dst: b.address, sport: 4000, dport: 5000, token: 'stolen' });
    expect(new Set((await done()).map((d) => d.token))).toEqual(new Set(['own']));
  }, 60_000);
});
