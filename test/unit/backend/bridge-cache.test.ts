import { describe, expect, it } from 'vitest';
import { PortRecords } from '../../../lib/backend/bridge-cache.js';

describe('PortRecords', () => {
  const records = PortRecords.of('abc123', [
    ['vif1.0', 'g=web b=xenbr0 m=00:16:3e:00:00:01 k=xen:1/0 i=- bl=- a=10.0.0.1/32\t0123456789ab'],
    ['vif1.0-emu', 'g=web b=xenbr0 m=00:16:3e:00:00:02 k=- i=- bl=- a=-'],
    ['vif2.0', 'g=db b=xenbr0 m=00:16:3e:00:00:03 k=xen:2/0 i=- bl=- a=10.0.0.2/32\tba9876543210'],
  ]);

  it('allRecords gives what recordsOf gives for every name, in one pass', () => {
    const names = records.entries().map(([ifname]) => ifname);
    expect(records.allRecords()).toEqual(records.recordsOf(names));
    expect(records.allRecords()['vif1.0']).toBe('g=web b=xenbr0 m=00:16:3e:00:00:01 k=xen:1/0 i=- bl=- a=10.0.0.1/32');
    expect(Object.keys(records.allRecords())).toEqual(['vif1.0', 'vif1.0-emu', 'vif2.0']);
  });

  it('finds a port by name, not by a name it starts with', () => {
    expect(records.recordsOf(['vif1.0'])).toEqual({ 'vif1.0': 'g=web b=xenbr0 m=00:16:3e:00:00:01 k=xen:1/0 i=- bl=- a=10.0.0.1/32' });
    expect(records.withKey('xen:2/0')).toEqual(['vif2.0']);
  });

  it('named picks a vif by name and every vif of a guest by its recorded guest, never by a prefix', () => {
    expect(records.named('web').sort()).toEqual(['vif1.0', 'vif1.0-emu']);
    expect(records.named('vif2.0')).toEqual(['vif2.0']);
    expect(records.named('we')).toEqual([]);
    expect(records.named('xenbr0')).toEqual([]);
  });
});
