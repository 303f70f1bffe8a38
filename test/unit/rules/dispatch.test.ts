import { describe, expect, it } from 'vitest';
import { buildDispatch } from '../../../lib/rules/dispatch.js';
import type { ChainSpec } from '../../../lib/rules/types.js';

describe('buildDispatch', () => {
  it('builds a radix tree of physdev prefix matches', () => {
    expect(buildDispatch('in', ['vif1.0', 'vif2.0', 'vif12.0', 'web01'])).toEqual([
      {
        name: 'vif-guard-in',
        rules: [
          ['-m', 'physdev', '--physdev-in', 'vif+', '-j', 'vif-guard-di-vif'],
          ['-m', 'physdev', '--physdev-in', 'web01', '-j', 'vif-guard-i-web01'],
        ],
      },
      {
        name: 'vif-guard-di-vif',
        rules: [
          ['-m', 'physdev', '--physdev-in', 'vif1+', '-j', 'vif-guard-di-vif1'],
          ['-m', 'physdev', '--physdev-in', 'vif2.0', '-j', 'vif-guard-i-vif2.0'],
        ],
      },
      {
        name: 'vif-guard-di-vif1',
        rules: [
          ['-m', 'physdev', '--physdev-in', 'vif1.0', '-j', 'vif-guard-i-vif1.0'],
          ['-m', 'physdev', '--physdev-in', 'vif12.0', '-j', 'vif-guard-i-vif12.0'],
        ],
      },
    ]);
  });

  it('puts an exact name before longer names it prefixes', () => {
    expect(buildDispatch('out', ['vm1', 'vm1a', 'vm1b'])).toEqual([
      { name: 'vif-guard-out', rules: [['-m', 'physdev', '--physdev-out', 'vm1+', '--physdev-is-bridged', '-j', 'vif-guard-do-vm1']] },
      {
        name: 'vif-guard-do-vm1',
        rules: [
          ['-m', 'physdev', '--physdev-out', 'vm1', '--physdev-is-bridged', '-j', 'vif-guard-o-vm1'],
          ['-m', 'physdev', '--physdev-out', 'vm1a', '--physdev-is-bridged', '-j', 'vif-guard-o-vm1a'],
          ['-m', 'physdev', '--physdev-out', 'vm1b', '--physdev-is-bridged', '-j', 'vif-guard-o-vm1b'],
        ],
      },
    ]);
  });

  it('no ports: an empty root', () => {
    expect(buildDispatch('in', [])).toEqual([{ name: 'vif-guard-in', rules: [] }]);
  });

  /** Follow the rules a packet from `name` would meet; count rules evaluated on the way. */
  function walk(chains: ChainSpec[], name: string): { target: string; evaluated: number } {
    const byName = new Map(chains.map((chain) => [chain.name, chain]));
    let chain = byName.get('vif-guard-in');
    let evaluated = 0;
    for (;;) {
      if (!chain) throw new Error('fell off the tree');
      let next: string | undefined;
      for (const rule of chain.rules) {
        evaluated += 1;
        const pattern = rule[3] ?? '';
        const hit = pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
        if (hit) {
          next = rule[5];
          break;
        }
      }
      if (!next) throw new Error(`${name} matched nothing`);
      if (next.startsWith('vif-guard-i-')) return { target: next, evaluated };
      chain = byName.get(next);
    }
  }

  it('sends every one of 4,000 ports to its own chain, evaluating few rules per packet', () => {
    const names = Array.from({ length: 4000 }, (_, i) => `vif${i + 1}.0`);
    const chains = buildDispatch('in', names);
    let worst = 0;
    for (const name of names) {
      const { target, evaluated } = walk(chains, name);
      expect(target).toBe(`vif-guard-i-${name}`);
      worst = Math.max(worst, evaluated);
    }
    // A linear list would evaluate up to 4,000 rules; the tree's bound depends on name length only.
    expect(worst).toBeLessThanOrEqual(60);
    expect(chains.every((chain) => chain.name.length <= 28)).toBe(true);
  });
});
