import { describe, expect, it } from 'vitest';
import { parseNotrackJson, planNotrack, renderNotrackTable } from '../../../lib/backend/nft-notrack.js';

const LIVE_JSON = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6' } },
    { table: { family: 'bridge', name: 'vif_guard', handle: 1 } },
    { set: { family: 'bridge', name: 'ports', table: 'vif_guard', type: 'ifname', handle: 1, elem: ['vif1.0', 'vif2.0'] } },
    { set: { family: 'bridge', name: 'macs', table: 'vif_guard', type: 'ether_addr', handle: 2, elem: ['00:16:3e:00:00:01'] } },
    { chain: { family: 'bridge', table: 'vif_guard', name: 'prerouting', handle: 3 } },
    { rule: { family: 'bridge', table: 'vif_guard', chain: 'prerouting', handle: 4, comment: 'vif-guard:notrack-from-guest', expr: [] } },
    { rule: { family: 'bridge', table: 'vif_guard', chain: 'prerouting', handle: 5, comment: 'vif-guard:notrack-to-guest', expr: [] } },
  ],
});

describe('NOTRACK table', () => {
  it('renders the whole table', () => {
    expect(renderNotrackTable({ ports: ['vif1.0'], macs: ['00:16:3e:00:00:01'] })).toBe(`table bridge vif_guard {
  set ports { type ifname; elements = { "vif1.0" }; }
  set macs { type ether_addr; elements = { 00:16:3e:00:00:01 }; }
  chain prerouting {
    type filter hook prerouting priority -300; policy accept;
    meta pkttype other iifname @ports notrack comment "vif-guard:notrack-from-guest"
    meta pkttype other ether daddr @macs notrack comment "vif-guard:notrack-to-guest"
  }
}`);
  });

  it('parses the live table', () => {
    expect(parseNotrackJson(LIVE_JSON)).toEqual({ exists: true, ports: ['vif1.0', 'vif2.0'], macs: ['00:16:3e:00:00:01'], rulesCurrent: true });
  });

  it('sends only element changes when the table is current, nothing when equal', () => {
    const live = parseNotrackJson(LIVE_JSON);
    expect(planNotrack(live, { ports: ['vif1.0', 'vif2.0'], macs: ['00:16:3e:00:00:01'] })).toBe('');
    expect(planNotrack(live, { ports: ['vif1.0', 'vif3.0'], macs: ['00:16:3e:00:00:01', '00:16:3e:00:00:03'] })).toBe(
      'delete element bridge vif_guard ports { "vif2.0" }\nadd element bridge vif_guard ports { "vif3.0" }\nadd element bridge vif_guard macs { 00:16:3e:00:00:03 }\n',
    );
  });

  it('rebuilds the table atomically when it is missing or its rules are not current', () => {
    const script = planNotrack({ exists: false, ports: [], macs: [], rulesCurrent: false }, { ports: ['vif1.0'], macs: [] });
    expect(script.startsWith('table bridge vif_guard {}\ndelete table bridge vif_guard\ntable bridge vif_guard {\n')).toBe(true);
    expect(planNotrack({ ...parseNotrackJson(LIVE_JSON), rulesCurrent: false }, { ports: ['vif1.0'], macs: [] })).toContain('delete table bridge vif_guard');
  });

  it('removes the table when nothing needs it, and only if it exists', () => {
    expect(planNotrack(parseNotrackJson(LIVE_JSON), undefined)).toBe('delete table bridge vif_guard\n');
    expect(planNotrack({ exists: false, ports: [], macs: [], rulesCurrent: false }, undefined)).toBe('');
  });
});
