import { describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBridgeNetfilter } from '../../../lib/kernel/bridge-nf.js';
import { createRecordingRunner } from '../../helpers/recording-runner.js';
import { scratchDir } from '../../helpers/scratch.js';

function procDir(values: Record<string, string> | undefined): string {
  const dir = join(scratchDir('vif-guard-proc-'), 'bridge');
  if (values) {
    mkdirSync(dir);
    for (const [key, value] of Object.entries(values)) writeFileSync(join(dir, key), value);
  }
  return dir;
}

describe('ensureBridgeNetfilter', () => {
  it('turns bridge-nf-call-iptables and -ip6tables on', async () => {
    const dir = procDir({ 'bridge-nf-call-iptables': '0\n', 'bridge-nf-call-ip6tables': '1\n' });
    const { runner, calls } = createRecordingRunner(() => undefined);
    expect(await ensureBridgeNetfilter(runner, dir)).toEqual(['set net.bridge.bridge-nf-call-iptables=1']);
    expect(readFileSync(join(dir, 'bridge-nf-call-iptables'), 'utf8')).toBe('1\n');
    expect(calls).toEqual([]);
  });
  it('loads br_netfilter when the sysctls do not exist, and fails when that does not help', async () => {
    const { runner, calls } = createRecordingRunner(() => undefined, ['modprobe']);
    await expect(ensureBridgeNetfilter(runner, procDir(undefined))).rejects.toThrow(/does not exist after loading br_netfilter/);
    expect(calls.map((call) => [call.command, ...call.args])).toEqual([['modprobe', 'br_netfilter']]);
  });
  it('fails, does not pretend, when modprobe fails', async () => {
    const { runner } = createRecordingRunner(() => ({ exitCode: 1, stderr: "modprobe: FATAL: Module br_netfilter not found\n" }), ['modprobe']);
    await expect(ensureBridgeNetfilter(runner, procDir(undefined))).rejects.toThrow(
      'br_netfilter is not loaded and modprobe br_netfilter failed: modprobe: FATAL: Module br_netfilter not found',
    );
  });
});
