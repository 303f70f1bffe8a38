import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { iptablesCachePath } from '../../../lib/backend/iptables-cache.js';
import { join } from 'node:path';
import { applyPortChange, desiredAfterChange } from '../../../lib/core/engine.js';
import { chooseEngine, nftablesUnavailable } from '../../../lib/core/choose.js';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { parseSave } from '../../../lib/backend/save-parse.js';
import { parseAddressList } from '../../../lib/guest/validate.js';
import { createRecordingRunner } from '../../helpers/recording-runner.js';
import type { GuestPort } from '../../../lib/guest/model.js';
import { scratchDir } from '../../helpers/scratch.js';

const lockPath = join(scratchDir('vif-guard-unit-'), 'lock');
const settings = { ...DEFAULT_SETTINGS, backend: 'nft' as const, log: false };
const port: GuestPort = { ifname: 'vm01', guest: 'vm01', bridge: 'xenbr0', mac: '00:16:3e:00:00:01', addresses: parseAddressList('10.0.0.5 2001:db8::5', { source: 't' }) };
const TOOLS = ['flock', 'iptables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-restore', 'ip6tables-nft-save', 'nft'];
const noTable = (call: { command: string; args: readonly string[] }) =>
  call.command === 'nft' && call.args[0] === '-j' && call.args.includes('vif_guard') ? { exitCode: 1, stderr: 'Error: No such file or directory\n' } : undefined;

describe('applyPortChange', () => {
  it('takes the lock, reads each family once, and sends one restore per family and one nft transaction', async () => {
    const { runner, calls } = createRecordingRunner(noTable, TOOLS);
    await applyPortChange({ runner, settings, lockPath, log: () => undefined }, { kind: 'up', port });
    expect(calls.map((call) => `${call.command} ${call.args.join(' ')}`)).toEqual([
      'flock -x -w 20 3',
      // Which tool enforces layer 2 (layer2_tool = auto): the kernel is asked once per boot.
      'nft -c -f -',
      'iptables-nft-save ',
      'ip6tables-nft-save -t filter',
      expect.stringMatching(/^nft -j list set bridge vif_guard guarded_[0-9a-f]{12}$/),
      'nft -j list table bridge vif_guard',
      'iptables-nft-restore --noflush -w 20',
      'ip6tables-nft-restore --noflush -w 20',
      'nft -f -',
    ]);
    // Each chain declared just before its rules, after the chains it jumps to (diff.ts, sendOrder).
    expect(calls[6]?.input).toBe(`*filter
:vif-guard-o-vm01 - [0:0]
-A vif-guard-o-vm01 -d 10.0.0.5/32 -j RETURN
-A vif-guard-o-vm01 -m pkttype --pkt-type broadcast -j RETURN
-A vif-guard-o-vm01 -d 224.0.0.0/4 -j RETURN
-A vif-guard-o-vm01 -p udp -m multiport --sports 67 -m multiport --dports 68 -j RETURN
-A vif-guard-o-vm01 -j DROP
:vif-guard-out - [0:0]
-A vif-guard-out -m physdev --physdev-out vm01 --physdev-is-bridged -j vif-guard-o-vm01
:vif-guard-i-vm01 - [0:0]
-A vif-guard-i-vm01 -p udp -m multiport --sports 67 -m multiport --dports 68 -j DROP
-A vif-guard-i-vm01 -s 10.0.0.5/32 -j RETURN
-A vif-guard-i-vm01 -p udp -m multiport --sports 68 -m multiport --dports 67 -j RETURN
-A vif-guard-i-vm01 -m comment --comment "vif-guard port=vm01 guest=vm01 bridge=xenbr0 mac=00:16:3e:00:00:01 key=-" -j DROP
:vif-guard-in - [0:0]
-A vif-guard-in -m physdev --physdev-in vm01 -j vif-guard-i-vm01
:vif-guard-fwd - [0:0]
-A vif-guard-fwd -j vif-guard-in
-A vif-guard-fwd -j vif-guard-out
-I FORWARD 1 -m physdev --physdev-is-bridged -j vif-guard-fwd
-I INPUT 1 -m physdev --physdev-is-in -j vif-guard-in
COMMIT
`);
    const v6 = calls[7]?.input ?? '';
    expect(v6).toContain('-A vif-guard-i-vm01 -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP\n');
    expect(v6).toContain('-A vif-guard-i-vm01 -s fe80::216:3eff:fe00:1/128 -j RETURN\n-A vif-guard-i-vm01 -s 2001:db8::5/128 -j RETURN\n');
    expect(v6).toContain('-A vif-guard-o-vm01 -d ff00::/8 -j RETURN\n');
    const nft = calls[8]?.input ?? '';
    expect(nft).toContain('add element bridge vif_guard port_mac { "vm01" . 00:16:3e:00:00:01 }');
    expect(nft).toContain('add element bridge vif_guard v4 { "vm01" . 10.0.0.5 }');
    // Layer 2 only: the IPv4 checks stay in iptables, so no IPv6 elements and no to_guest chain.
    expect(nft).not.toContain('add element bridge vif_guard v6');
    expect(nft).not.toContain('to_guest_');
  });

  it('fails with the lock error when another vif-guard holds the lock too long', async () => {
    const { runner } = createRecordingRunner((call) => (call.command === 'flock' ? { exitCode: 1 } : undefined), TOOLS);
    await expect(applyPortChange({ runner, settings, lockPath, log: () => undefined }, { kind: 'up', port })).rejects.toThrow(/another vif-guard held .* for more than 20s/);
  });

  it('reports the failing payload line when iptables-restore fails', async () => {
    const { runner } = createRecordingRunner(
      (call) => noTable(call) ?? (call.command === 'iptables-nft-restore' ? { exitCode: 2, stderr: 'iptables-restore v1.8.9 (nf_tables): line 9 failed\n' } : undefined),
      TOOLS,
    );
    await expect(applyPortChange({ runner, settings, lockPath, log: () => undefined }, { kind: 'up', port })).rejects.toThrow(
      'iptables-nft-restore failed: iptables-restore v1.8.9 (nf_tables): line 9 failed (payload line 9: -A vif-guard-out -m physdev --physdev-out vm01 --physdev-is-bridged -j vif-guard-o-vm01)',
    );
  });

  it('a kernel that cannot create the layer-2 table: a clear error that names layer2_tool = ebtables and layer2 = no', async () => {
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    const { runner } = createRecordingRunner((call) => noTable(call) ?? (call.command === 'nft' && call.args[0] === '-f' ? { exitCode: 1, stderr: 'Error: Could not process rule: Operation not supported\n' } : undefined), TOOLS);
    await expect(applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port })).rejects.toThrow(
      /^nft -f failed: Error: Could not process rule: Operation not supported: this kernel cannot load the layer-2 table .*set layer2_tool = ebtables \(or layer2 = no, IPv4\/IPv6 checks only\) in vif-guard.conf/,
    );
  });

  it('a kernel that cannot load the bridge table, with ebtables installed: layer 2 goes to ebtables nat, in one restore after the IP rules', async () => {
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    const nat = 'Bridge table: nat\n\nBridge chain: PREROUTING, entries: 0, policy: ACCEPT\n\nBridge chain: OUTPUT, entries: 0, policy: ACCEPT\n\nBridge chain: POSTROUTING, entries: 0, policy: ACCEPT\n';
    const { runner, calls } = createRecordingRunner(
      (call) =>
        noTable(call) ??
        (call.command === 'nft' && call.args[0] === '-c' ? { exitCode: 1, stderr: 'Error: Could not process rule: Operation not supported\n' } : undefined) ??
        (call.command === 'ebtables' ? { stdout: nat } : undefined),
      [...TOOLS, 'ebtables', 'ebtables-restore'],
    );
    await applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port });
    const commands = calls.map((call) => `${call.command} ${call.args.join(' ')}`);
    expect(commands.filter((command) => /restore|^nft -f|^ebtables/.test(command))).toEqual([
      'iptables-nft-restore --noflush -w 20',
      'ip6tables-nft-restore --noflush -w 20',
      'ebtables -t nat -L',
      'ebtables-restore --noflush',
    ]);
    const payload = calls.find((call) => call.command === 'ebtables-restore')?.input ?? '';
    expect(payload.split('\n').slice(0, 3)).toEqual(['*nat', '-N vif-guard-l2 -P RETURN', expect.stringMatching(/^-N vgl2-p-vm01-[0-9a-f]{6} -P RETURN$/)]);
    expect(payload).toContain('-A vif-guard-l2 -i vm01 -j vgl2-p-vm01-');
    expect(payload).toMatch(/-p 0x0806 --arp-mac-src ! 00:16:3e:00:00:01 -j DROP\n/);
    expect(payload.trimEnd().split('\n').at(-1)).toBe('-I PREROUTING 1 -j vif-guard-l2');
    expect(commands.some((command) => command === 'nft -f -')).toBe(false);
  });

  it('layer2_tool = ebtables on a kernel without ebtables nat: fails closed, naming the module and the alternative', async () => {
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    const { runner, calls } = createRecordingRunner(
      (call) => noTable(call) ?? (call.command === 'ebtables' ? { exitCode: 255, stderr: "The kernel doesn't support the ebtables 'nat' table.\n" } : undefined),
      [...TOOLS, 'ebtables', 'ebtables-restore'],
    );
    await expect(applyPortChange({ runner, settings: { ...settings, layer2Tool: 'ebtables' }, lockPath: fresh, log: () => undefined }, { kind: 'up', port })).rejects.toThrow(
      /^ebtables cannot read its nat table \(The kernel doesn't support the ebtables 'nat' table\.\): .*modprobe ebtable_nat.*update-alternatives --set ebtables \/usr\/sbin\/ebtables-legacy/,
    );
    expect(calls.some((call) => call.command === 'ebtables-restore')).toBe(false);
  });

  it('layer2 = no: IP rules without nft, for kernels that have no nf_tables', async () => {
    const { runner, calls } = createRecordingRunner(() => undefined, TOOLS.filter((tool) => tool !== 'nft'));
    await applyPortChange({ runner, settings: { ...settings, layer2: false }, lockPath, log: () => undefined }, { kind: 'up', port });
    expect(calls.filter((call) => call.command.endsWith('-restore')).map((call) => call.command)).toEqual(['iptables-nft-restore', 'ip6tables-nft-restore']);
  });

  it('refuses, changing nothing, when nft is missing: MAC and ARP checks would be absent', async () => {
    const { runner, calls } = createRecordingRunner(() => undefined, TOOLS.filter((tool) => tool !== 'nft'));
    await expect(applyPortChange({ runner, settings, lockPath, log: () => undefined }, { kind: 'up', port })).rejects.toThrow(/nft is not installed/);
    expect(calls.some((call) => call.command.endsWith('-restore'))).toBe(false);
  });
});

const FORWARD_ON_TOP = '-P FORWARD ACCEPT\n-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd\n-A FORWARD -s 192.0.2.0/24 -j ACCEPT\n';
const forwardAs = (text: string) => (call: { command: string; args: readonly string[] }) => noTable(call) ?? (call.command === 'iptables-nft' ? { stdout: text } : undefined);

describe('the iptables backend with this boot\'s cache', () => {
  it('after one commit, a hook reads only FORWARD: it sends checks and the changed chains for both families and layer 2 at once', async () => {
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    const { runner, calls } = createRecordingRunner(forwardAs(FORWARD_ON_TOP), TOOLS);
    await applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port });
    calls.length = 0;
    const second = { ...port, ifname: 'vm02', mac: '00:16:3e:00:00:02', addresses: parseAddressList('10.0.0.6', { source: 't' }) };
    const report = await applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port: second });
    expect(calls.map((call) => `${call.command} ${call.args.join(' ')}`)).toEqual(['flock -x -w 20 3', 'iptables-nft -w 20 -S FORWARD', 'iptables-nft-restore --noflush -w 20', 'ip6tables-nft-restore --noflush -w 20', 'nft -f -']);
    const v4 = calls[2]?.input ?? '';
    expect(v4.split('\n').slice(0, 4)).toEqual(['*filter', '-C FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd', '-C INPUT -m physdev --physdev-is-in -j vif-guard-in', '-C vif-guard-fwd -j vif-guard-in']);
    expect(v4).toContain(':vif-guard-i-vm02 - [0:0]\n');
    expect(v4).toContain(':vif-guard-di-vm0 - [0:0]\n');
    // vm01's own chains are not named: only the dispatch above it moves.
    expect(v4).not.toMatch(/vif-guard-[io]-vm01 /);
    expect(calls[4]?.input).toContain('add element bridge vif_guard port_mac { "vm02" . 00:16:3e:00:00:02 }');
    expect(report.plans[0]?.added).toEqual(['vif-guard-i-vm02', 'vif-guard-o-vm02', 'vif-guard-di-vm0', 'vif-guard-do-vm0']);

    calls.length = 0;
    const again = await applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port: second });
    // The same port, configured the same: only checks go out, so its chains and counters stay.
    expect(again.plans.every((plan) => plan.lines.length === 0)).toBe(true);
    expect((calls[2]?.input ?? '').split('\n').filter((line) => line !== '' && line !== '*filter' && line !== 'COMMIT').every((line) => line.startsWith('-C '))).toBe(true);
  });

  it('a rule inserted above the FORWARD jump (upstream vif-bridge runs iptables -I FORWARD): the jump goes back on top in the same commit', async () => {
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    const { runner, calls } = createRecordingRunner(forwardAs(FORWARD_ON_TOP), TOOLS);
    await applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port });
    const pre = createRecordingRunner(forwardAs(`-P FORWARD ACCEPT\n-A FORWARD -m physdev --physdev-is-bridged --physdev-out vm01 -j ACCEPT\n${FORWARD_ON_TOP.split('\n').slice(1).join('\n')}`), TOOLS);
    const report = await applyPortChange({ runner: pre.runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port });
    const v4 = (pre.calls[2]?.input ?? '').split('\n');
    expect(v4.slice(-4)).toEqual(['-D FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd', '-I FORWARD 1 -m physdev --physdev-is-bridged -j vif-guard-fwd', 'COMMIT', '']);
    expect(v4).not.toContain('-C FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd');
    expect(report.plans[0]?.lines).toHaveLength(2);
    // IPv6: stock scripts never touch ip6tables, so only the presence check.
    expect(pre.calls[3]?.input).toContain('-C FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd\n');
    expect(calls.length).toBeGreaterThan(0);
  });

  it('when the table is not what the cache says, the commit fails and the hook reads the tables instead', async () => {
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    let fail = false;
    const { runner, calls } = createRecordingRunner((call) => forwardAs(FORWARD_ON_TOP)(call) ?? (fail && call.command === 'iptables-nft-restore' && call.input?.includes('-C FORWARD') ? { exitCode: 1, stderr: 'iptables-nft-restore: line 2 failed\n' } : undefined), TOOLS);
    await applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port });
    fail = true;
    calls.length = 0;
    await applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'down', ifname: 'vm01' });
    expect(calls.map((call) => call.command)).toEqual(['flock', 'iptables-nft', 'iptables-nft-restore', 'ip6tables-nft-restore', 'nft', 'iptables-nft-save', 'ip6tables-nft-save', 'nft', 'nft', 'iptables-nft-restore', 'ip6tables-nft-restore']);
  });
});

describe('a cache file that is not what vif-guard writes', () => {
  it('is ignored: a name or record a script could be steered by makes the hook read the tables', async () => {
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    const { runner, calls } = createRecordingRunner(noTable, TOOLS);
    await applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port });
    const file = iptablesCachePath(fresh);
    for (const line of ['vm9 -j ACCEPT\tg=x b=- m=- k=- i=- bl=- a=-', 'vm9\tg="x" b=- m=- k=- i=- bl=- a=-']) {
      writeFileSync(file, `${readFileSync(file, 'utf8')}${line}\n`);
      calls.length = 0;
      await applyPortChange({ runner, settings, lockPath: fresh, log: () => undefined }, { kind: 'up', port });
      expect(calls.map((call) => call.command).slice(0, 2)).toEqual(['flock', 'iptables-nft-save']);
    }
  });
});

describe('nftablesUnavailable (backend = auto)', () => {
  it('asks the kernel to check the table once per boot, and picks iptables with the reason when it cannot load it', async () => {
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    const { runner, calls } = createRecordingRunner((call) => (call.command === 'nft' && call.args[0] === '-c' ? { exitCode: 1, stderr: 'Error: Could not process rule: Operation not supported\n' } : undefined), TOOLS);
    const auto = { ...DEFAULT_SETTINGS, backend: 'auto' as const };
    await expect(nftablesUnavailable(runner, auto, fresh)).resolves.toMatch(/^this kernel cannot load the nftables backend's table \(Error: Could not process rule: Operation not supported\)/);
    expect(calls[0]?.input).toMatch(/^table bridge vif_guard_probe \{\n {2}set guarded_/);
    await expect(chooseEngine(runner, auto, fresh)).resolves.toBe('iptables');
    expect(calls).toHaveLength(1);
    const ok = createRecordingRunner(() => undefined, TOOLS);
    await expect(chooseEngine(ok.runner, auto, join(scratchDir('vif-guard-unit-'), 'lock'))).resolves.toBe('nftables');
    await expect(chooseEngine(ok.runner, auto, undefined)).resolves.toBe('nftables');
    await expect(nftablesUnavailable(createRecordingRunner(() => undefined, ['flock']).runner, auto)).resolves.toBe('nft is not installed');
  });
});

describe('the nftables backend', () => {
  const nftables = { ...DEFAULT_SETTINGS, backend: 'nftables' as const, log: false };
  it('a hook reads one set and sends one transaction of elements; iptables is not touched', async () => {
    const { runner, calls } = createRecordingRunner(noTable, TOOLS);
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    await applyPortChange({ runner, settings: nftables, lockPath: fresh, log: () => undefined }, { kind: 'up', port });
    const commands = calls.map((call) => `${call.command} ${call.args.join(' ')}`);
    // The table is missing: the whole table is read (absent) and iptables is checked for leftovers once.
    expect(commands).toEqual([
      'flock -x -w 20 3',
      expect.stringMatching(/^nft -j list set bridge vif_guard guarded_[0-9a-f]{12}$/),
      'nft -j list table bridge vif_guard',
      'iptables-nft-save ',
      'ip6tables-nft-save -t filter',
      'nft -f -',
    ]);
    const script = calls[5]?.input ?? '';
    expect(script).toContain('add element bridge vif_guard v6 { "vm01" . fe80::216:3eff:fe00:1, "vm01" . 2001:db8::5 }');
    expect(script).toContain('oifname . ip daddr @v4 return');
  });

  it('with the table in place a hook is two nft calls: read the guarded set, write elements', async () => {
    const live = (call: { command: string; args: readonly string[] }) =>
      call.command === 'nft' && call.args[0] === '-j' && /^guarded_/.test(call.args[call.args.length - 1] ?? '')
        ? { exitCode: 0, stdout: JSON.stringify({ nftables: [{ set: { name: call.args[call.args.length - 1], table: 'vif_guard', elem: [] } }] }) }
        : undefined;
    const { runner, calls } = createRecordingRunner(live, TOOLS);
    const fresh = join(scratchDir('vif-guard-unit-'), 'lock');
    await applyPortChange({ runner, settings: nftables, lockPath: fresh, log: () => undefined }, { kind: 'up', port });
    expect(calls.map((call) => call.command)).toEqual(['flock', 'nft', 'nft']);
    // Then the hook's own cache of what it committed: the next hook asks nft nothing and sends one transaction.
    calls.length = 0;
    await applyPortChange({ runner, settings: nftables, lockPath: fresh, log: () => undefined }, { kind: 'up', port: { ...port, ifname: 'vm02', mac: '00:16:3e:00:00:02' } });
    expect(calls.map((call) => call.command)).toEqual(['flock', 'nft']);
    expect(calls[1]?.input).not.toContain('"vm01"');
    expect((calls[2]?.input ?? '').split('\n').every((line) => line === '' || line.startsWith('add element'))).toBe(true);
  });
});

describe('desiredAfterChange', () => {
  const live4 = parseSave(`*filter
:vif-guard-i-vm02 - [0:0]
:vif-guard-o-vm02 - [0:0]
-A vif-guard-i-vm02 -s 10.0.0.6/32 -j RETURN
-A vif-guard-i-vm02 -m comment --comment "vif-guard port=vm02 guest=vm02 bridge=xenbr1 mac=00:16:3e:00:00:02" -j DROP
-A vif-guard-o-vm02 -j DROP
COMMIT
`, 'filter');
  const live6 = parseSave('*filter\n:vif-guard-i-vm02 - [0:0]\n-A vif-guard-i-vm02 -j DROP\nCOMMIT\n', 'filter');

  it('keeps other ports verbatim; their MAC and IPv4 addresses feed the bridge table', () => {
    const desired = desiredAfterChange(live4, live6, { kind: 'up', port }, DEFAULT_SETTINGS);
    expect(desired.tables[0]?.chains.find((chain) => chain.name === 'vif-guard-i-vm02')?.rules).toEqual([
      ['-s 10.0.0.6/32 -j RETURN'],
      ['-m comment --comment "vif-guard port=vm02 guest=vm02 bridge=xenbr1 mac=00:16:3e:00:00:02" -j DROP'],
    ]);
    expect(desired.tables[1]?.chains.find((chain) => chain.name === 'vif-guard-i-vm02')?.rules).toEqual([['-j DROP']]);
    expect(desired.bridge?.ports.map((p) => [p.ifname, p.mac, p.v4])).toEqual([
      ['vm01', '00:16:3e:00:00:01', ['10.0.0.5']],
      ['vm02', '00:16:3e:00:00:02', ['10.0.0.6']],
    ]);
  });

  it('down by key removes the port even under another name (renamed, or vifname gone)', () => {
    const keyed = parseSave(`*filter
:vif-guard-i-web01 - [0:0]
-A vif-guard-i-web01 -s 10.0.0.7/32 -j RETURN
-A vif-guard-i-web01 -m comment --comment "vif-guard port=web01 guest=web bridge=xenbr0 mac=- key=xen:5/0" -j DROP
COMMIT
`, 'filter');
    const desired = desiredAfterChange(keyed, live6, { kind: 'down', ifname: 'vif5.0', key: 'xen:5/0' }, DEFAULT_SETTINGS);
    expect(desired.tables[0]?.chains.map((chain) => chain.name)).toEqual(['vif-guard-fwd', 'vif-guard-in', 'vif-guard-out']);
  });

  it('down removes just that port, and the bridge table when none is left', () => {
    const desired = desiredAfterChange(live4, live6, { kind: 'down', ifname: 'vm02' }, DEFAULT_SETTINGS);
    expect(desired.tables[0]?.chains.map((chain) => chain.name)).toEqual(['vif-guard-fwd', 'vif-guard-in', 'vif-guard-out']);
    expect(desired.bridge).toBeUndefined();
  });
});
