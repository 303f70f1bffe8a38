import { describe, expect, it } from 'vitest';
import { ABSENT, FROM_GUEST, parseBridgeJson, planBridge, PREROUTING } from '../../../lib/backend/nft-bridge.js';
import { buildBridge } from '../../../lib/rules/build.js';
import { ifnameOfL2Chain, l2Chain } from '../../../lib/rules/l2.js';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { parseAddressList } from '../../../lib/guest/validate.js';
import type { BridgeSpec } from '../../../lib/rules/types.js';

const settings = { ...DEFAULT_SETTINGS, log: false };
const ipv4 = (text: string) => parseAddressList(text, { source: 't' });

/** The cheap listings a hook reads (chains, map, sets), as nft -j prints them, for a table in this state. */
function listings(spec: BridgeSpec): string[] {
  const chains = [PREROUTING, FROM_GUEST, ...spec.guests.map((g) => g.chain)].map((name) => ({ chain: { family: 'bridge', table: 'vif_guard', name } }));
  const foreign = { chain: { family: 'bridge', table: 'someone_else', name: 'g_x_000000000000' } };
  return [
    JSON.stringify({ nftables: [{ metainfo: {} }, ...chains, foreign] }),
    JSON.stringify({ nftables: [{ map: { name: 'guests', table: 'vif_guard', elem: spec.guests.map((g) => [g.ifname, { jump: { target: g.chain } }]) } }] }),
    JSON.stringify({ nftables: [{ set: { name: 'ports', table: 'vif_guard', elem: spec.notrack?.ports ?? [] } }] }),
    JSON.stringify({ nftables: [{ set: { name: 'macs', table: 'vif_guard', elem: spec.notrack?.macs ?? [] } }] }),
  ];
}

describe('bridge table', () => {
  it('chain names carry the port and the digest of its rules, and round-trip', () => {
    for (const name of ['vif1.0', 'vif1.0-emu', 'web_01', 'a-_b', 'x__h']) expect(ifnameOfL2Chain(l2Chain(name, '0123456789ab'))).toBe(name);
    expect(l2Chain('vif1.0-emu', '0123456789ab')).toBe('g_vif1.0_hemu_0123456789ab');
  });

  it('from nothing: the whole table in one transaction', () => {
    const desired = buildBridge([{ ifname: 'vif1.0', mac: '00:16:3e:00:00:01', ipv4: ipv4('10.0.0.5 10.0.0.64/30') }], settings);
    const script = planBridge(ABSENT, desired);
    expect(script.startsWith('table bridge vif_guard {}\ndelete table bridge vif_guard\ntable bridge vif_guard {\n')).toBe(true);
    expect(script).toContain('iifname vmap @guests');
    expect(script).toContain('ether type arp arp saddr ip != { 0.0.0.0, 10.0.0.5, 10.0.0.64/30 } counter drop comment "vg:arp-ip"');
    expect(script).toContain('ether type != { ip, arp, ip6 } counter drop');
    expect(script).toMatch(/add element bridge vif_guard guests \{ "vif1.0" : jump g_vif1.0_[0-9a-f]{12} \}/);
  });

  it('the same state again sends nothing; a new guest sends only its chain and elements', () => {
    const one = buildBridge([{ ifname: 'vif1.0', mac: '00:16:3e:00:00:01', ipv4: ipv4('10.0.0.5') }], settings);
    if (!one) throw new Error('no spec');
    const live = parseBridgeJson(listings(one));
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
    expect(lines[0]).toMatch(/^add chain bridge vif_guard g_vif2.0_[0-9a-f]{12}$/);
    expect(lines.filter((line) => line.includes('g_vif1.0'))).toEqual([]);
    expect(lines.slice(-3)).toEqual([
      expect.stringMatching(/^add element bridge vif_guard guests \{ "vif2.0" : jump g_vif2.0_/),
      'add element bridge vif_guard ports { "vif2.0" }',
      'add element bridge vif_guard macs { 00:16:3e:00:00:02 }',
    ]);
  });

  it('changed rules: a new chain, the element repointed, the old chain removed, in one transaction', () => {
    const before = buildBridge([{ ifname: 'vif1.0', mac: undefined, ipv4: ipv4('10.0.0.5') }], settings);
    const after = buildBridge([{ ifname: 'vif1.0', mac: undefined, ipv4: ipv4('10.0.0.6') }], settings);
    if (!before || !after) throw new Error('no spec');
    const [oldChain, newChain] = [before.guests[0]?.chain, after.guests[0]?.chain];
    const lines = planBridge(parseBridgeJson(listings(before)), after).trimEnd().split('\n');
    expect(lines.filter((line) => !line.startsWith('add rule'))).toEqual([
      `add chain bridge vif_guard ${newChain}`,
      'delete element bridge vif_guard guests { "vif1.0" }',
      `add element bridge vif_guard guests { "vif1.0" : jump ${newChain} }`,
      `flush chain bridge vif_guard ${oldChain}`,
      `delete chain bridge vif_guard ${oldChain}`,
    ]);
  });

  it('an outdated skeleton rebuilds the table; nothing left removes it', () => {
    const one = buildBridge([{ ifname: 'vif1.0', mac: undefined, ipv4: ipv4('10.0.0.5') }], settings);
    if (!one) throw new Error('no spec');
    const live = parseBridgeJson(listings(one));
    expect(planBridge({ ...live, skeletonCurrent: false }, one)).toContain('delete table bridge vif_guard');
    expect(planBridge(live, undefined)).toBe('delete table bridge vif_guard\n');
    expect(planBridge(ABSENT, undefined)).toBe('');
  });

  it('reads drop counters by class from a full listing', () => {
    const live = parseBridgeJson([
      JSON.stringify({
        nftables: [
          { chain: { table: 'vif_guard', name: 'g_vif1.0_0123456789ab' } },
          { rule: { table: 'vif_guard', chain: 'g_vif1.0_0123456789ab', comment: 'vg:mac', expr: [{ counter: { packets: 7, bytes: 700 } }] } },
        ],
      }),
    ]);
    expect(live.counters.get('g_vif1.0_0123456789ab')?.get('mac')).toEqual({ packets: 7, bytes: 700 });
  });
});
