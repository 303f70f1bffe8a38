import { describe, expect, it } from 'vitest';
import { NAMES_SHOWN, someOf } from '../../../../lib/cli/commands/sync.js';

describe('sync log lines', () => {
  const vifs = (count: number) => Array.from({ length: count }, (_, i) => `vif${i + 1}.0`);

  it('names every port while there are few', () => {
    expect(someOf(['vif1.0', 'vif2.0'])).toBe('vif1.0 vif2.0');
    expect(someOf(vifs(NAMES_SHOWN))).toBe(vifs(NAMES_SHOWN).join(' '));
  });

  it('names the first ones and counts the rest when a host has thousands (journald cuts lines at 48 KB)', () => {
    const line = someOf(vifs(4000));
    expect(line).toBe(`4000 vif(s): ${vifs(NAMES_SHOWN).join(' ')} and ${4000 - NAMES_SHOWN} more (--json lists them all)`);
    expect(line.length).toBeLessThan(400);
  });
});
