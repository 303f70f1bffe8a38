import { describe, expect, it } from 'vitest';
import { ipsetsOfPort, referencedIpsets } from '../../../lib/backend/ipset.js';

describe('ipsetsOfPort', () => {
  const names = ['vgb-vif1.0-i4-abc123', 'vgb-vif1.0-o6-0f0f0f', 'vgb-vif1.0-emu-i4-abc123', 'vgb-vif1.01-i4-abc123', 'vgb-vif1.0-x4-abc123', 'other-vif1.0-i4-abc123'];

  it('names a port\'s own sets only: not those of vif1.0-emu or vif1.01, nor foreign ones', () => {
    expect(ipsetsOfPort(names, 'vif1.0')).toEqual(['vgb-vif1.0-i4-abc123', 'vgb-vif1.0-o6-0f0f0f']);
    expect(ipsetsOfPort(names, 'vif1.0-emu')).toEqual(['vgb-vif1.0-emu-i4-abc123']);
    expect(ipsetsOfPort(names, 'vif2.0')).toEqual([]);
  });
});

describe('referencedIpsets', () => {
  it('reads vif-guard\'s set names from rules, whatever the direction flags', () => {
    const rules = ['-m set --match-set vgb-vif1.0-i4-abc123 src -j DROP', '-m set --match-set fail2ban-ssh src -j DROP', '-s 10.0.0.1/32 -j RETURN'];
    expect([...referencedIpsets(rules)]).toEqual(['vgb-vif1.0-i4-abc123']);
  });
});
