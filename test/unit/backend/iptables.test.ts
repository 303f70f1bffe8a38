import { describe, expect, it } from 'vitest';
import { createIptablesBackend, detectBackend, restoreError } from '../../../lib/backend/iptables.js';
import { createRecordingRunner } from '../../helpers/recording-runner.js';

const ALL = ['iptables-nft-restore', 'iptables-nft-save', 'iptables-legacy-restore', 'iptables-legacy-save'];
const EMPTY = '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n';
const RULES = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n';
const OURS = '*filter\n:INPUT ACCEPT [0:0]\n:vif-guard-in - [0:0]\nCOMMIT\n';

function saves(nft: string, legacy: string) {
  return createRecordingRunner((call) => (call.command === 'iptables-nft-save' ? { stdout: nft } : call.command === 'iptables-legacy-save' ? { stdout: legacy } : undefined), ALL);
}

describe('detectBackend', () => {
  it.each([
    ['the variant that holds vif-guard\'s chains', RULES, OURS, 'legacy'],
    ['the only variant that holds rules', EMPTY, RULES, 'legacy'],
    ['the only variant that holds rules (nft)', RULES, EMPTY, 'nft'],
    ['the host default when neither holds rules', EMPTY, EMPTY, 'nft'],
  ])('auto picks %s', async (_what, nft, legacy, expected) => {
    const { runner } = saves(nft, legacy);
    expect((await detectBackend(runner, 'auto', 5)).backend.variant).toBe(expected);
  });

  it('warns when both variants hold rules', async () => {
    const { runner } = saves(RULES, RULES);
    expect((await detectBackend(runner, 'auto', 5)).warnings).toEqual([
      'both iptables-nft and iptables-legacy hold rules; packets pass both, and vif-guard manages only one',
    ]);
  });

  it('a forced variant that is not installed is a clear error', async () => {
    const { runner } = createRecordingRunner(() => undefined, ['iptables-nft-restore']);
    await expect(detectBackend(runner, 'legacy', 5)).rejects.toThrow('backend = legacy but iptables-legacy-restore is not installed (apt-get install iptables)');
  });
});

describe('restoreError', () => {
  it('names the failing payload line with context', () => {
    const error = restoreError('iptables-nft-restore', '*filter\n:a - [0:0]\n-A a -m nosuch -j DROP\nCOMMIT\n', 'iptables-restore: line 3 failed\n', false);
    expect(error.shortMessage).toBe('iptables-nft-restore failed: iptables-restore: line 3 failed (payload line 3: -A a -m nosuch -j DROP)');
    expect(error.details).toContain('> 3: -A a -m nosuch -j DROP');
  });
});

describe('chains', () => {
  const listing: Record<string, string> = {
    FORWARD: '-P FORWARD DROP\n-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd\n-A FORWARD -j ACCEPT\n',
    'vif-guard-i-vif1.0': '-N vif-guard-i-vif1.0\n-A vif-guard-i-vif1.0 -s 10.0.0.1/32 -j RETURN\n-A vif-guard-i-vif1.0 -j DROP\n',
  };
  const runner = () =>
    createRecordingRunner((call) => {
      const text = listing[call.args[call.args.indexOf('-S') + 1] ?? ''];
      return text === undefined ? { exitCode: 1, stderr: 'iptables: No chain/target/match by that name.\n' } : { stdout: text };
    });

  it('reads each chain with its own -S (both `-P` and `-N` headers) into one table', async () => {
    const { runner: r, calls } = runner();
    const table = await createIptablesBackend(r, 'legacy', 7, 6).chains(['FORWARD', 'vif-guard-i-vif1.0']);
    expect(calls.map((call) => [call.command, ...call.args])).toEqual([
      ['ip6tables-legacy', '-w', '7', '-S', 'FORWARD'],
      ['ip6tables-legacy', '-w', '7', '-S', 'vif-guard-i-vif1.0'],
    ]);
    expect(table?.chains.get('FORWARD')).toMatchObject({ policy: 'DROP', rules: ['-m physdev --physdev-is-bridged -j vif-guard-fwd', '-j ACCEPT'] });
    expect(table?.chains.get('vif-guard-i-vif1.0')).toMatchObject({ policy: '-', rules: ['-s 10.0.0.1/32 -j RETURN', '-j DROP'] });
  });

  it('is undefined when a chain is missing', async () => {
    expect(await createIptablesBackend(runner().runner, 'nft', 5).chains(['FORWARD', 'vif-guard-i-vif9.0'])).toBeUndefined();
  });
});
