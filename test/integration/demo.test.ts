import { describe, expect, it } from 'vitest';
import { $ } from 'zx';
import { spawn } from 'node:child_process';
import { CAN_USE_NETNS } from '../helpers/env.js';

$.quiet = true;

const demoNamespaces = async () => (await $`ip netns list`).stdout.split('\n').filter((line) => line.startsWith('vgdemo-'));

describe.skipIf(!CAN_USE_NETNS)('vif-guard demo', () => {
  it('blocks every attack, passes every legitimate flow, exits 0 and leaves nothing behind', async () => {
    const started = Date.now();
    const result = await $`node dist/bundle/vif-guard.cjs demo --json`.nothrow();
    expect(result.exitCode, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { ok: boolean; rows: { id: string; kind: string; before: string; after: string; ok: boolean }[] };
    expect(report.ok).toBe(true);
    expect(report.rows.map((row) => [row.id, row.after])).toEqual([
      ['own-to-neighbour', 'passed'],
      ['own-to-dom0', 'passed'],
      ['hostile-own', 'passed'],
      ['dhcp-request', 'passed'],
      ['own6-to-neighbour', 'passed'],
      ['spoof-neighbour', 'blocked'],
      ['steal-neighbour', 'blocked'],
      ['spoof-dom0', 'blocked'],
      ['steal-dom0', 'blocked'],
      ['rogue-dhcp', 'blocked'],
      ['steal6-neighbour', 'blocked'],
      ['changed-mac', 'blocked'],
      ['arp-claim', 'blocked'],
      ['nd-claim', 'blocked'],
      ['rogue-ra', 'blocked'],
      ['vlan-spoof', 'blocked'],
    ]);
    // Without protection every flow got through, attacks included: the demo's attacks are real.
    expect(report.rows.every((row) => row.before === 'passed')).toBe(true);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await demoNamespaces()).toEqual([]);
  }, 60_000);

  it('cleans up on Ctrl-C', async () => {
    const child = spawn(process.execPath, ['dist/bundle/vif-guard.cjs', 'demo'], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect((await demoNamespaces()).length).toBeGreaterThan(0);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(await demoNamespaces()).toEqual([]);
  }, 60_000);
});
