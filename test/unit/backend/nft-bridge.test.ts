import { describe, expect, it } from 'vitest';
import { ABSENT, parseBridgeJson, planBridge } from '../../../lib/backend/nft-bridge.js';
import { buildBridge } from '../../../lib/rules/build.js';
import { l2Chain, ifnameOfL2Chain } from '../../../lib/rules/l2.js';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { parseAddressList } from '../../../lib/guest/validate.js';

const settings = { ...DEFAULT_SETTINGS, log: false };
const ipv4 = (text: string) => parseAddressList(text, { source: 't' });

/** What nft -j would print for a table holding exactly this script's guests (comments carry the digests). */
function liveJson(script: string, skeletonComments: string[], counters = false): string {
  const items: unknown[] = [{ metainfo: {} }, { table: { family: 'bridge', name: 'vif_guard' } }];
  for (const comment of skeletonComments) items.push({ rule: { chain: 'prerouting', comment } });
  const chains = [...script.matchAll(/chain (g_\S+) \{\n((?: {4}.*\n)*) {2}\}/g)];
  for (const [, name, body] of chains) {
    items.push({ chain: { name } });
    for (const line of (body ?? '').trimEnd().split('\n')) {
      const comment = /comment "([^"]*)"$/.exec(line)?.[1];
      items.push({ rule: { chain: name, comment, expr: counters ? [{ counter: { packets: 7, bytes: 700 } }] : [] } });
    }
  }
  const guests = [...script.matchAll(/"(\S+)" : jump (g_\S+)/g)].map(([, key, target]) => [key, { jump: { target } }]);
  items.push({ map: { name: 'guests', elem: guests } });
  for (const [, name, elems] of script.matchAll(/add element bridge vif_guard (ports|macs) \{ (.*) \}/g)) {
    items.push({ set: { name, elem: (elems ?? '').split(', ').map((value) => value.replace(/"/g, '')) } });
  }
  return JSON.stringify({ nftables: items });
}

describe('bridge table', () => {
  it('chain names round-trip for every interface-name character', () => {
    for (const name of ['vif1.0', 'vif1.0-emu', 'web_01', 'a-_b', 'x__h']) expect(ifnameOfL2Chain(l2Chain(name))).toBe(name);
    expect(l2Chain('vif1.0-emu')).toBe('g_vif1.0_hemu');
  });

  it('from nothing: the whole table in one transaction', () => {
    const desired = buildBridge([{ ifname: 'vif1.0', mac: '00:16:3e:00:00:01', ipv4: ipv4('10.0.0.5 10.0.0.64/30') }], settings);
    const script = planBridge(ABSENT, desired);
    expect(script.startsWith('table bridge vif_guard {}\ndelete table bridge vif_guard\ntable bridge vif_guard {\n')).toBe(true);
    expect(script).toContain('iifname vmap @guests');
    expect(script).toContain('ether type arp arp saddr ip != { 0.0.0.0, 10.0.0.5, 10.0.0.64/30 } counter drop');
    expect(script).toContain('ether type != { ip, arp, ip6 } counter drop');
    expect(script).toContain('add element bridge vif_guard guests { "vif1.0" : jump g_vif1.0 }');
  });

  it('the same state again sends nothing; one new guest sends only its chain and elements', () => {
    const one = buildBridge([{ ifname: 'vif1.0', mac: '00:16:3e:00:00:01', ipv4: ipv4('10.0.0.5') }], settings);
    const full = planBridge(ABSENT, one);
    const skeleton = [...full.matchAll(/comment "(vg:(?:notrack|dispatch)[^"]*)"/g)].map((m) => m[1] ?? '');
    const live = parseBridgeJson(liveJson(full, skeleton));
    expect(live.skeletonCurrent).toBe(true);
    expect(planBridge(live, one)).toBe('');
    const two = buildBridge(
      [
        { ifname: 'vif1.0', mac: '00:16:3e:00:00:01', ipv4: ipv4('10.0.0.5') },
        { ifname: 'vif2.0', mac: '00:16:3e:00:00:02', ipv4: ipv4('10.0.0.6') },
      ],
      settings,
    );
    const lines = planBridge(live, two).trimEnd().split('\n');
    expect(lines[0]).toBe('add chain bridge vif_guard g_vif2.0');
    expect(lines.filter((line) => line.includes('g_vif1.0'))).toEqual([]);
    expect(lines.slice(-3)).toEqual([
      'add element bridge vif_guard guests { "vif2.0" : jump g_vif2.0 }',
      'add element bridge vif_guard ports { "vif2.0" }',
      'add element bridge vif_guard macs { 00:16:3e:00:00:02 }',
    ]);
  });

  it('a guest that is gone loses its element before its chain; an outdated skeleton rebuilds the table', () => {
    const one = buildBridge([{ ifname: 'vif1.0', mac: undefined, ipv4: ipv4('10.0.0.5') }], settings);
    const full = planBridge(ABSENT, one);
    const skeleton = [...full.matchAll(/comment "(vg:(?:notrack|dispatch)[^"]*)"/g)].map((m) => m[1] ?? '');
    const live = parseBridgeJson(liveJson(full, skeleton, true));
    expect(live.counters.get('g_vif1.0')?.get('arp-ip')).toEqual({ packets: 7, bytes: 700 });
    const other = buildBridge([{ ifname: 'vif3.0', mac: undefined, ipv4: ipv4('10.0.0.7') }], settings);
    const lines = planBridge(live, other).trimEnd().split('\n');
    expect(lines.slice(0, 3)).toEqual([
      'delete element bridge vif_guard guests { "vif1.0" }',
      'flush chain bridge vif_guard g_vif1.0',
      'delete chain bridge vif_guard g_vif1.0',
    ]);
    expect(planBridge({ ...live, skeletonCurrent: false }, other)).toContain('delete table bridge vif_guard');
    expect(planBridge(live, undefined)).toBe('delete table bridge vif_guard\n');
  });
});
