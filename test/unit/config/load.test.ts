import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseSettings } from '../../../lib/config/load.js';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';

describe('parseSettings', () => {
  it('the commented template gives the defaults', () => {
    expect(parseSettings(readFileSync('templates/vif-guard.conf', 'utf8'), 'template')).toEqual(DEFAULT_SETTINGS);
  });
  it('reads every key', () => {
    expect(parseSettings('[general]\nbackend = legacy\nnotrack = no\nunaddressed = block\nlog = off\nlayer2 = no\nlayer2_tool = ebtables\nlog_per_minute = 30\nlog_burst = 3\nlock_timeout = 10\n[xen]\nxen_config_dir = /srv/xen\n', 'f')).toEqual({
      ...DEFAULT_SETTINGS, backend: 'legacy', notrack: false, unaddressed: 'block', log: false, layer2: false, layer2Tool: 'ebtables', logPerMinute: 30, logBurst: 3, lockTimeout: 10, xenConfigDir: '/srv/xen',
    });
  });
  it.each([
    ['[general]\nbakend = nft\n', /f: unknown key `bakend` in \[general\]/],
    ['[general]\nbackend = nftable\n', /f: `backend` must be auto, nftables, iptables, iptables-nft or iptables-legacy, got `nftable`/],
    ['[general]\nlayer2_tool = arptables\n', /f: `layer2_tool` must be auto, nftables or ebtables, got `arptables`/],
    ['[general]\nlock_timeout = 60\n', /`lock_timeout` must be seconds from 1 to 35/],
    ['[other]\nx = 1\n', /unknown section \[other\]/],
    ['backend = nft\n', /must be inside a \[general\], \[xen\] or \[openvz\] section/],
  ])('rejects %j naming the key', (text, message) => {
    expect(() => parseSettings(text, 'f')).toThrow(message);
  });
});
