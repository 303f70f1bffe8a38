import { describe, expect, it } from 'vitest';
import { detectBackend, restoreError } from '../../../lib/backend/iptables.js';
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
