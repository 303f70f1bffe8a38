import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyPortChange, desiredAfterChange } from '../../../lib/core/engine.js';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { parseSave } from '../../../lib/backend/save-parse.js';
import { parseAddressList } from '../../../lib/guest/validate.js';
import { createRecordingRunner } from '../../helpers/recording-runner.js';
import type { GuestPort } from '../../../lib/guest/model.js';

const lockPath = join(mkdtempSync(join(tmpdir(), 'vif-guard-unit-')), 'lock');
const settings = { ...DEFAULT_SETTINGS, backend: 'nft' as const, log: false };
const port: GuestPort = { ifname: 'vm01', guest: 'vm01', bridge: 'xenbr0', mac: undefined, addresses: parseAddressList('10.0.0.5', { source: 't' }) };

describe('applyPortChange', () => {
  it('takes the lock, reads the tables in one call, and sends one restore with a block per table', async () => {
    const { runner, calls } = createRecordingRunner(() => undefined);
    await applyPortChange({ runner, settings, lockPath, log: () => undefined }, { kind: 'up', port });
    expect(calls.map((call) => `${call.command} ${call.args.join(' ')}`)).toEqual([
      'flock -x -w 20 3',
      'iptables-nft-save ',
      'iptables-nft-restore --noflush -w 20',
    ]);
    expect(calls[2]?.input).toBe(`*filter
:vif-guard-fwd - [0:0]
:vif-guard-in - [0:0]
:vif-guard-out - [0:0]
:vif-guard-i-vm01 - [0:0]
:vif-guard-o-vm01 - [0:0]
-A vif-guard-fwd -j vif-guard-in
-A vif-guard-fwd -j vif-guard-out
-A vif-guard-in -m physdev --physdev-in vm01 -j vif-guard-i-vm01
-A vif-guard-out -m physdev --physdev-out vm01 --physdev-is-bridged -j vif-guard-o-vm01
-A vif-guard-i-vm01 -p udp -m udp --sport 67 --dport 68 -j DROP
-A vif-guard-i-vm01 -s 10.0.0.5/32 -j RETURN
-A vif-guard-i-vm01 -p udp -m udp --sport 68 --dport 67 -j RETURN
-A vif-guard-i-vm01 -m comment --comment "vif-guard port=vm01 guest=vm01 bridge=xenbr0 mac=-" -j DROP
-A vif-guard-o-vm01 -d 10.0.0.5/32 -j RETURN
-A vif-guard-o-vm01 -m pkttype --pkt-type broadcast -j RETURN
-A vif-guard-o-vm01 -d 224.0.0.0/4 -j RETURN
-A vif-guard-o-vm01 -p udp -m udp --sport 67 --dport 68 -j RETURN
-A vif-guard-o-vm01 -j DROP
-I FORWARD 1 -m physdev --physdev-is-bridged -j vif-guard-fwd
-I INPUT 1 -m physdev --physdev-is-in -j vif-guard-in
COMMIT
`);
  });

  it('fails with the lock error when another vif-guard holds the lock too long', async () => {
    const { runner } = createRecordingRunner((call) => (call.command === 'flock' ? { exitCode: 1 } : undefined));
    await expect(applyPortChange({ runner, settings, lockPath, log: () => undefined }, { kind: 'up', port })).rejects.toThrow(
      /another vif-guard held .* for more than 20s/,
    );
  });

  it('reports the failing payload line when iptables-restore fails', async () => {
    const { runner } = createRecordingRunner((call) =>
      call.command === 'iptables-nft-restore' ? { exitCode: 2, stderr: 'iptables-restore v1.8.9 (nf_tables): line 9 failed\n' } : undefined,
    );
    await expect(applyPortChange({ runner, settings, lockPath, log: () => undefined }, { kind: 'up', port })).rejects.toThrow(
      'iptables-nft-restore failed: iptables-restore v1.8.9 (nf_tables): line 9 failed (payload line 9: -A vif-guard-in -m physdev --physdev-in vm01 -j vif-guard-i-vm01)',
    );
  });
});

describe('desiredAfterChange', () => {
  const live = parseSave(`*filter
:vif-guard-i-vm02 - [0:0]
:vif-guard-o-vm02 - [0:0]
-A vif-guard-i-vm02 -s 10.0.0.6/32 -j RETURN
-A vif-guard-i-vm02 -m comment --comment "vif-guard port=vm02 guest=vm02 bridge=xenbr1 mac=00:16:3e:00:00:02" -j DROP
-A vif-guard-o-vm02 -j DROP
COMMIT
`, 'filter');

  it('keeps other ports verbatim, and their MACs for NOTRACK', () => {
    const desired = desiredAfterChange(live, { kind: 'up', port }, DEFAULT_SETTINGS);
    const filter = desired.tables[0];
    const names = filter?.chains.map((chain) => chain.name);
    expect(names).toContain('vif-guard-i-vm02');
    expect(filter?.chains.find((chain) => chain.name === 'vif-guard-i-vm02')?.rules).toEqual([
      ['-s 10.0.0.6/32 -j RETURN'],
      ['-m comment --comment "vif-guard port=vm02 guest=vm02 bridge=xenbr1 mac=00:16:3e:00:00:02" -j DROP'],
    ]);
    expect(desired.notrack).toEqual({ ports: ['vm01', 'vm02'], macs: ['00:16:3e:00:00:02'] });
  });

  it('down removes just that port', () => {
    const desired = desiredAfterChange(live, { kind: 'down', ifname: 'vm02' }, DEFAULT_SETTINGS);
    expect(desired.tables[0]?.chains.map((chain) => chain.name)).toEqual(['vif-guard-fwd', 'vif-guard-in', 'vif-guard-out']);
    expect(desired.notrack).toBeUndefined();
  });
});
