import { describe, expect, it } from 'vitest';
import { NAMES_SHOWN, someOf } from '../../lib/names.js';

describe('names in one log line', () => {
  const vifs = (count: number) => Array.from({ length: count }, (_, i) => `vif${i + 1}.0`);

  it('names every port while there are few', () => {
    expect(someOf(['vif1.0', 'vif2.0'], 'hint')).toBe('vif1.0 vif2.0');
    expect(someOf(vifs(NAMES_SHOWN), 'hint', ', ')).toBe(vifs(NAMES_SHOWN).join(', '));
  });

  it('names the first ones and counts the rest when a host has thousands (journald cuts lines at 48 KB)', () => {
    const line = someOf(vifs(4000), '--json lists them all');
    expect(line).toBe(`${vifs(NAMES_SHOWN).join(' ')} and ${4000 - NAMES_SHOWN} more, 4000 in all (--json lists them all)`);
    expect(line.length).toBeLessThan(400);
  });
});
