import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { collectInventory, gatherInventory } from '../../../lib/core/inventory.js';
import { digestOf, fileDigest, readMemo, writeMemo } from '../../../lib/core/sync-memo.js';
import { createRecordingRunner } from '../../helpers/recording-runner.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** An OpenVZ node's files: two running containers, their CTID.conf and containers.conf. */
function node() {
  const dir = mkdtempSync(join(tmpdir(), 'vg-memo-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'conf'));
  const conf = (ctid: number, mac: string) => `ONBOOT="yes"\nNETIF="ifname=eth0,bridge=vmbr0,mac=${mac},host_ifname=veth${ctid}.0,host_mac=FE:FF:FF:FF:FF:FF"\n`;
  writeFileSync(join(dir, 'conf', '101.conf'), conf(101, '00:18:51:00:00:01'));
  writeFileSync(join(dir, 'conf', '102.conf'), conf(102, '00:18:51:00:00:02'));
  writeFileSync(join(dir, 'containers.conf'), '[101]\neth0 = 10.0.0.1\n[102]\neth0 = 10.0.0.2\n');
  const settings = { ...DEFAULT_SETTINGS, vzConfDir: join(dir, 'conf'), containersConf: join(dir, 'containers.conf') };
  const { runner } = createRecordingRunner((call) => (call.command === 'vzlist' ? { stdout: '  101\n  102\n' } : undefined), ['vzlist']);
  return { dir, settings, runner };
}

describe("sync's memo", () => {
  it('digests keep their parts apart, and a missing part is not an empty one', () => {
    expect(digestOf('ab', 'c')).not.toBe(digestOf('a', 'bc'));
    expect(digestOf(undefined)).not.toBe(digestOf(''));
    expect(digestOf('x', 'y')).toBe(digestOf('x', 'y'));
    expect(fileDigest('/nonexistent/vif-guard')).toBe('-');
  });

  it('a memo that is missing, not JSON or incomplete reads as none', () => {
    const { dir } = node();
    const path = join(dir, 'memo');
    expect(readMemo(path)).toBeUndefined();
    writeFileSync(path, 'not json');
    expect(readMemo(path)).toBeUndefined();
    writeFileSync(path, '{"key":"k"}');
    expect(readMemo(path)).toBeUndefined();
    writeMemo(path, { key: 'k', listing: 'l', payload: { guarded: 2 } });
    expect(readMemo(path)).toEqual({ key: 'k', listing: 'l', payload: { guarded: 2 } });
  });

  it("the inventory's digest names every byte it is parsed from, and nothing else", async () => {
    const { dir, settings, runner } = node();
    const first = await gatherInventory(runner, settings);
    expect(first.parse()).toEqual(await collectInventory(runner, settings));
    expect(first.parse().ports.map((port) => [port.ifname, port.addresses.map((a) => a.cidr)])).toEqual([
      ['veth101.0', ['10.0.0.1/32']],
      ['veth102.0', ['10.0.0.2/32']],
    ]);
    // The same bytes rewritten (a touch, an editor's save): the same digest.
    writeFileSync(join(dir, 'containers.conf'), '[101]\neth0 = 10.0.0.1\n[102]\neth0 = 10.0.0.2\n');
    expect((await gatherInventory(runner, settings)).digest).toBe(first.digest);
    // One byte of one container's file, or of containers.conf: another digest.
    writeFileSync(join(dir, 'conf', '102.conf'), `${'ONBOOT="no"\n'}NETIF="ifname=eth0,bridge=vmbr0,mac=00:18:51:00:00:02,host_ifname=veth102.0,host_mac=FE:FF:FF:FF:FF:FF"\n`);
    const second = await gatherInventory(runner, settings);
    expect(second.digest).not.toBe(first.digest);
    writeFileSync(join(dir, 'containers.conf'), '[101]\neth0 = 10.0.0.1\n[102]\neth0 = 10.0.0.3\n');
    expect((await gatherInventory(runner, settings)).digest).not.toBe(second.digest);
  });

  it('a bad file is still an error naming it, raised when the inventory is parsed', async () => {
    const { dir, settings, runner } = node();
    writeFileSync(join(dir, 'containers.conf'), '[101]\neth0 = 10.0.0.300\n');
    const gathered = await gatherInventory(runner, settings);
    expect(() => gathered.parse()).toThrow(/10\.0\.0\.300.*containers\.conf/);
    await expect(collectInventory(runner, settings)).rejects.toThrow(/10\.0\.0\.300.*containers\.conf/);
    rmSync(join(dir, 'conf', '102.conf'));
    writeFileSync(join(dir, 'containers.conf'), '[101]\neth0 = 10.0.0.1\n');
    const missing = await gatherInventory(runner, settings);
    expect(() => missing.parse()).toThrow(/no container 102: .*102\.conf does not exist/);
    await expect(collectInventory(runner, settings)).rejects.toThrow(/no container 102: .*102\.conf does not exist/);
  });
});
