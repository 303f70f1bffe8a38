import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkBridgeChains, checkBridgeSets, checkCodeCache, checkConntrack, checkIptables, OVERLAPS_SHOWN, overlapChecks, persistentSysctl, worst } from '../../../lib/core/doctor.js';
import { ABSENT, type LiveBridge } from '../../../lib/backend/nft-bridge.js';
import { blockChainShapes, bridgeSkeleton, chainShapes, declaredSets, type ChainShape } from '../../../lib/rules/bridge.js';
import { detectBackend } from '../../../lib/backend/iptables.js';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { createRecordingRunner } from '../../helpers/recording-runner.js';
import { scratchDir } from '../../helpers/scratch.js';

function tree(files: Record<string, string>): string {
  const root = scratchDir('vif-guard-doctor-');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('doctor checks that a namespace cannot break', () => {
  it('the physdev match missing is an error with its fix', async () => {
    const { runner } = createRecordingRunner(
      (call) => (call.command === 'iptables-nft-restore' ? { exitCode: 2, stderr: "iptables-restore v1.8.9 (nf_tables): Couldn't load match `physdev':No such file or directory\n" } : undefined),
      ['iptables-nft-restore', 'iptables-nft-save'],
    );
    const detection = await detectBackend(runner, 'nft', 5);
    const checks = await checkIptables({ runner, settings: { ...DEFAULT_SETTINGS, backend: 'nft' }, root: '/', procSys: '/proc/sys' }, detection);
    expect(checks.find((check) => check.id === 'physdev')).toEqual({
      id: 'physdev',
      level: 'error',
      message: "the physdev match is not available (iptables-restore v1.8.9 (nf_tables): Couldn't load match `physdev':No such file or directory)",
      fix: 'modprobe xt_physdev',
    });
  });

  it('the neighbour-advertisement matches missing is an error with its fix; present, it says so', async () => {
    const missing = "ip6tables-restore v1.8.9 (nf_tables): Couldn't load match `ipv6header':No such file or directory\n";
    const { runner } = createRecordingRunner(
      (call) => (call.command === 'ip6tables-nft-restore' ? { exitCode: 2, stderr: missing } : undefined),
      ['iptables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-restore'],
    );
    const detection = await detectBackend(runner, 'nft', 5);
    const checks = await checkIptables({ runner, settings: { ...DEFAULT_SETTINGS, backend: 'nft' }, root: '/', procSys: '/proc/sys' }, detection);
    expect(checks.find((check) => check.id === 'nd-matches')).toMatchObject({ level: 'error', fix: 'modprobe ip6t_ipv6header xt_string' });
    expect(checks.find((check) => check.id === 'nd-matches')?.message).toContain("Couldn't load match `ipv6header'");
    const { runner: fine } = createRecordingRunner(() => undefined, ['iptables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-restore']);
    const okChecks = await checkIptables({ runner: fine, settings: { ...DEFAULT_SETTINGS, backend: 'nft' }, root: '/', procSys: '/proc/sys' }, await detectBackend(fine, 'nft', 5));
    expect(okChecks.find((check) => check.id === 'nd-matches')?.level).toBe('ok');
  });

  it.each([
    [900, 1000, 'error'],
    [800, 1000, 'warning'],
    [10, 1000, 'ok'],
  ])('conntrack %i of %i is %s, with the timeouts that matter', (count, max, level) => {
    const procSys = tree({
      'net/netfilter/nf_conntrack_count': `${count}\n`,
      'net/netfilter/nf_conntrack_max': `${max}\n`,
      'net/netfilter/nf_conntrack_udp_timeout': '30\n',
      'net/netfilter/nf_conntrack_udp_timeout_stream': '120\n',
      'net/netfilter/nf_conntrack_tcp_timeout_established': '432000\n',
    });
    const { runner } = createRecordingRunner(() => undefined);
    const [check] = checkConntrack({ runner, settings: DEFAULT_SETTINGS, root: '/', procSys }, 0, undefined);
    expect(check?.level).toBe(level);
    expect(check?.message).toContain(`nf_conntrack_count ${count} of nf_conntrack_max ${max}`);
    expect(check?.message).toContain('tcp_timeout_established=432000s');
  });

  it('persistent sysctl: /etc overrides /usr/lib by file name, the last file in name order wins', () => {
    const root = tree({
      'usr/lib/sysctl.d/50-default.conf': 'net.bridge.bridge-nf-call-iptables = 0\n',
      'etc/sysctl.d/60-vif-guard.conf': 'net.bridge.bridge-nf-call-iptables = 1\n',
      'usr/lib/sysctl.d/60-vif-guard.conf': 'net.bridge.bridge-nf-call-iptables = 0\n',
    });
    expect(persistentSysctl(root, 'net.bridge.bridge-nf-call-iptables')).toEqual({ value: '1', file: join(root, 'etc/sysctl.d/60-vif-guard.conf') });
    writeFileSync(join(root, 'etc/sysctl.d/99-xen.conf'), 'net/bridge/bridge-nf-call-iptables=0\n');
    expect(persistentSysctl(root, 'net.bridge.bridge-nf-call-iptables').value).toBe('0');
  });

  it('exit status: 2 with any error, 1 with warnings only, else 0', () => {
    expect(worst([{ id: 'a', level: 'ok', message: '' }])).toBe(0);
    expect(worst([{ id: 'a', level: 'warning', message: '' }])).toBe(1);
    expect(worst([{ id: 'a', level: 'warning', message: '' }, { id: 'b', level: 'error', message: '' }])).toBe(2);
  });
});

describe('doctor on an OpenVZ node', () => {
  it('checks vps.mount and the vznet.conf EXTERNAL_SCRIPT, and says nothing without /etc/vz', async () => {
    const { checkOpenvzHooks } = await import('../../../lib/core/doctor.js');
    const { chmodSync } = await import('node:fs');
    const { runner } = createRecordingRunner(() => undefined);
    expect(checkOpenvzHooks({ runner, settings: DEFAULT_SETTINGS, root: tree({}), procSys: '/proc/sys' })).toEqual([]);
    const bare = tree({ 'etc/vz/conf/101.conf': '', 'etc/vz/vznet.conf': 'EXTERNAL_SCRIPT="/usr/sbin/vznetaddbr"\n' });
    expect(checkOpenvzHooks({ runner, settings: DEFAULT_SETTINGS, root: bare, procSys: '/proc/sys' }).map((c) => [c.id, c.level])).toEqual([
      ['openvz:vps.mount', 'error'],
      ['openvz:vznet', 'warning'],
    ]);
    const good = tree({ 'etc/vz/conf/vps.mount': '#!/bin/sh\n"/usr/lib/vif-guard/bin/vz-mount"\n', 'etc/vz/vznet.conf': 'EXTERNAL_SCRIPT="/usr/lib/vif-guard/bin/vznet-hook"\n' });
    chmodSync(join(good, 'etc/vz/conf/vps.mount'), 0o755);
    expect(checkOpenvzHooks({ runner, settings: DEFAULT_SETTINGS, root: good, procSys: '/proc/sys' }).map((c) => c.level)).toEqual(['ok', 'ok']);
  });
});

describe("doctor on the hooks' code cache", () => {
  it('says nothing from a source tree, ok when used, and names the fix when V8 rejects it or it is missing', () => {
    expect(checkCodeCache(undefined)).toEqual([]);
    expect(checkCodeCache('used')[0]?.level).toBe('ok');
    for (const state of ['rejected', 'missing']) {
      const [check] = checkCodeCache(state);
      expect(check?.level).toBe('warning');
      expect(check?.fix).toContain('install.sh');
    }
    expect(checkCodeCache('rejected')[0]?.message).toContain('node changed');
  });
});

describe('doctor on a host with thousands of guests', () => {
  const overlap = (i: number) => `10.0.0.${i}/32 (g${i}, vif${i}.0) overlaps 10.0.0.${i}/32 (h${i}, vif${i}.1): either guest may use those addresses`;

  it('each overlap between guests is a warning while there are few', () => {
    const checks = overlapChecks([overlap(1), 'vif9.0 is claimed twice (a Xen vif and an OpenVZ veth?); the last one wins', overlap(2)]);
    expect(checks.map((check) => [check.level, check.message])).toEqual([['warning', overlap(1)], ['warning', overlap(2)]]);
  });

  it('a bad address plan adds one line counting the rest, not one per overlap', () => {
    const checks = overlapChecks(Array.from({ length: 500 }, (_, i) => overlap(i)));
    expect(checks).toHaveLength(OVERLAPS_SHOWN + 1);
    expect(checks.at(-1)).toMatchObject({ id: 'overlap', level: 'warning', message: `and ${500 - OVERLAPS_SHOWN} more overlaps between guests' addresses, 500 in all (vif-guard sync --dry-run names each)` });
  });
});

describe('the bridge table\'s chains against what vif-guard writes', () => {
  const settings = { ...DEFAULT_SETTINGS, backend: 'nftables' as const };
  const skeleton = bridgeSkeleton(settings, true);
  const live = (chains: Map<string, ChainShape>, digest = skeleton.digest): LiveBridge => ({ ...ABSENT, exists: true, digest, ip: true, chains });
  const written = () => chainShapes(skeleton.body);

  it('as written: ok', () => {
    expect(checkBridgeChains(live(written()), settings, true)).toEqual([{ id: 'bridge-chains', level: 'ok', message: "bridge vif_guard's 8 chains are as vif-guard wrote them" }]);
  });

  it('an accept inserted, a drop turned into accept, a chain gone or added: an error naming each, fixed by sync --rebuild', () => {
    const chains = written();
    const ip4 = chains.get('from_ip4') as ChainShape;
    chains.set('from_ip4', { hook: undefined, verdicts: ['accept', ...ip4.verdicts] });
    const to4 = chains.get('to_ip4') as ChainShape;
    chains.set('to_ip4', { hook: undefined, verdicts: [...to4.verdicts.slice(0, -1), 'accept'] });
    chains.delete('from_nd');
    chains.set('mine', { hook: 'prerouting -300 accept', verdicts: ['accept'] });
    const [check] = checkBridgeChains(live(chains), settings, true);
    expect(check).toMatchObject({ id: 'bridge-chains', level: 'error', fix: 'vif-guard sync --rebuild' });
    expect(check?.message).toContain(`chain from_ip4 has ${ip4.verdicts.length + 1} rules where vif-guard wrote ${ip4.verdicts.length}, the first difference at rule 1 (accept instead of ${ip4.verdicts[0]})`);
    expect(check?.message).toContain(`chain to_ip4 has ${to4.verdicts.length} rules where vif-guard wrote ${to4.verdicts.length}, the first difference at rule ${to4.verdicts.length} (accept instead of drop)`);
    expect(check?.message).toContain('chain from_nd is missing');
    expect(check?.message).toContain('chain mine is not one vif-guard wrote');
  });

  it('a base chain on another hook, and a rule deleted at the end, are named too', () => {
    const chains = written();
    const base = `from_guest_${skeleton.digest}`;
    chains.set(base, { ...(chains.get(base) as ChainShape), hook: 'prerouting 0 accept' });
    const arp = chains.get('from_arp') as ChainShape;
    chains.set('from_arp', { hook: undefined, verdicts: arp.verdicts.slice(0, -1) });
    const [check] = checkBridgeChains(live(chains), settings, true);
    expect(check?.message).toContain(`chain ${base} hooks prerouting 0 accept instead of prerouting -290 accept`);
    expect(check?.message).toContain(`the first difference at rule ${arp.verdicts.length} (none instead of drop)`);
  });

  it('a blocked port\'s chains are expected too', () => {
    const port = { ifname: 'vif1.0', mac: undefined, v4: [], v6: [], comment: '', fields: { guest: 'web', bridge: undefined, mac: undefined, key: undefined, block: 'abc', addresses: [] } };
    const withPort = (chains: Map<string, ChainShape>): LiveBridge => ({ ...live(chains), ports: new Map([['vif1.0', port]]) });
    expect(checkBridgeChains(withPort(written()), settings, true)[0]?.message).toContain('chain bli_vif1_d0 is missing');
    expect(checkBridgeChains(withPort(new Map([...written(), ...blockChainShapes('vif1.0', 'abc', settings)])), settings, true)[0]?.level).toBe('ok');
  });

  it('its sets: the skeleton\'s and each blocked port\'s are in use; a blocklist\'s sets that no port names any more are a warning', () => {
    const port = { ifname: 'vif1.0', mac: undefined, v4: [], v6: [], comment: '', fields: { guest: 'web', bridge: undefined, mac: undefined, key: undefined, block: 'abc', addresses: [] } };
    const inUse = [...declaredSets(skeleton.body), 'bl_in4_vif1_d0_abc', 'bl_in6_vif1_d0_abc', 'bl_out4_vif1_d0_abc', 'bl_out6_vif1_d0_abc'];
    const withSets = (sets: string[]): LiveBridge => ({ ...live(written()), ports: new Map([['vif1.0', port]]), sets: new Set(sets) });
    expect(checkBridgeSets(withSets(inUse), settings, true)).toEqual([{ id: 'bridge-sets', level: 'ok', message: `bridge vif_guard's ${inUse.length} sets are all in use` }]);
    // The port's list was replaced while its record had lost the old digest: the old sets stay behind.
    const [check] = checkBridgeSets(withSets([...inUse, 'bl_in4_vif1_d0_0ff', 'bl_in6_vif1_d0_0ff', 'mine']), settings, true);
    expect(check).toMatchObject({ id: 'bridge-sets', level: 'warning', fix: 'vif-guard sync --rebuild' });
    expect(check?.message).toBe('bridge vif_guard holds 3 sets that no port uses (2 of a blocklist no port has any more); they match nothing but hold kernel memory: bl_in4_vif1_d0_0ff, bl_in6_vif1_d0_0ff, mine');
    // Without the port's record naming its list, its own sets are unused too.
    expect(checkBridgeSets({ ...withSets(inUse), ports: new Map() }, settings, true)[0]?.message).toContain('4 sets that no port uses (4 of a blocklist');
    expect(checkBridgeSets(ABSENT, settings, true)).toEqual([]);
    expect(checkBridgeSets(live(written()), settings, true)).toEqual([]);
  });

  it('nothing to say when the table is absent, has another layout, or was listed without its rules', () => {
    expect(checkBridgeChains(ABSENT, settings, true)).toEqual([]);
    expect(checkBridgeChains(live(new Map(), '0123456789ab'), settings, true)).toEqual([]);
    expect(checkBridgeChains({ ...ABSENT, exists: true, digest: skeleton.digest, ip: true }, settings, true)).toEqual([]);
  });
});
