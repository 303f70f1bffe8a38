import { describe, expect, it } from 'vitest';
import { ABSENT, listBridgeSets, parseBridgeJson, parseBridgeSets, planBridge, portMatches } from '../../../lib/backend/nft-bridge.js';
import { blockRules, bridgePort, bridgeSkeleton, buildBridgeSpec, collapse, LEARNED_MAX, parsePortComment, portComment } from '../../../lib/rules/bridge.js';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { parseAddressList } from '../../../lib/guest/validate.js';
import type { GuestPort } from '../../../lib/guest/model.js';
import type { BridgeSpec } from '../../../lib/rules/types.js';
import { createRecordingRunner } from '../../helpers/recording-runner.js';
import type { Runner } from '../../../lib/runner.js';

const settings = { ...DEFAULT_SETTINGS, log: false };
const port = (ifname: string, ip: string, mac: string | undefined = '00:16:3e:00:00:01', key?: string): GuestPort => ({
  ifname,
  guest: `g-${ifname}`,
  bridge: 'xenbr0',
  mac,
  addresses: parseAddressList(ip, { source: 't' }),
  key,
});
const spec = (ports: GuestPort[], ip = true): BridgeSpec => {
  const built = buildBridgeSpec(ports, settings, ip);
  if (!built) throw new Error('no spec');
  return built;
};

/** What `nft -j list set bridge vif_guard guarded_<digest>` prints for a table in this state (a hook's read). */
function guardedListing(desired: BridgeSpec): string {
  return JSON.stringify({
    nftables: [
      { metainfo: {} },
      { set: { family: 'bridge', name: `guarded_${desired.digest}`, table: 'vif_guard', type: 'ifname', elem: desired.ports.map((p) => ({ elem: { val: p.ifname, comment: p.comment } })) } },
    ],
  });
}

/** What `nft -j list table bridge vif_guard` prints (sets with elements, chains, counters). */
function tableListing(desired: BridgeSpec, counters: Record<string, Record<string, number>> = {}): string {
  const concat = (ifname: string, value: string) => ({ concat: [ifname, value.includes('/') ? { prefix: { addr: value.split('/')[0], len: Number(value.split('/')[1]) } } : value] });
  const set = (name: string, elem: unknown[]) => ({ set: { family: 'bridge', table: 'vif_guard', name, elem } });
  return JSON.stringify({
    nftables: [
      { metainfo: {} },
      JSON.parse(guardedListing(desired)).nftables[1],
      set('macs', [...new Set(desired.ports.flatMap((p) => (p.mac ? [p.mac] : [])))]),
      set('mac_ports', desired.ports.filter((p) => p.mac).map((p) => p.ifname)),
      set('port_mac', desired.ports.filter((p) => p.mac).map((p) => ({ concat: [p.ifname, p.mac] }))),
      // Hosts in the hash sets, prefixes in the interval sets.
      ...(['v4', 'v6'] as const).flatMap((family) => [
        set(family, desired.ports.flatMap((p) => p[family].filter((a) => !a.includes('/')).map((a) => concat(p.ifname, a)))),
        set(`${family}net`, desired.ports.flatMap((p) => p[family].filter((a) => a.includes('/') && !(family === 'v6' && a.endsWith('/64'))).map((a) => concat(p.ifname, a)))),
      ]),
      set('v6p64', desired.ports.flatMap((p) => p.v6.filter((a) => a.endsWith('/64')).map((a) => concat(p.ifname, a.slice(0, -3))))),
      ...Object.entries(counters).map(([cls, perPort]) => set(`cnt_${cls}`, Object.entries(perPort).map(([ifname, packets]) => ({ elem: { val: ifname, counter: { packets, bytes: packets * 100 } } })))),
      { chain: { family: 'bridge', table: 'vif_guard', name: `from_guest_${desired.digest}` } },
      ...(desired.ip ? [{ chain: { family: 'bridge', table: 'vif_guard', name: `to_guest_${desired.digest}` } }] : []),
      { set: { family: 'bridge', table: 'someone_else', name: 'v4', elem: [{ concat: ['vif9.0', '10.9.9.9'] }] } },
    ],
  });
}

describe('bridge table layout', () => {
  it('one skeleton per mode and settings; its digest changes with either', () => {
    const ip = bridgeSkeleton(settings, true);
    const l2 = bridgeSkeleton(settings, false);
    expect(ip.digest).not.toBe(l2.digest);
    expect(bridgeSkeleton({ ...settings, log: true }, true).digest).not.toBe(ip.digest);
    expect(bridgeSkeleton(settings, true).digest).toBe(ip.digest);
    const text = ip.body.join('\n');
    expect(text).toContain(`iifname != @guarded_${ip.digest} accept`);
    expect(text).toContain('iifname . ip saddr @v4 return');
    expect(text).toContain('oifname . ip6 daddr @v6 return');
    expect(text).toContain('add @cnt_src { iifname counter } drop');
    expect(l2.body.join('\n')).not.toContain('from_ip4');
  });

  it('per-port logging is a dynamic set with a limit per port', () => {
    const text = bridgeSkeleton({ ...settings, log: true, logPerMinute: 6, logBurst: 10 }, true).body.join('\n');
    expect(text).toContain('add @log_src { iifname limit rate 6/minute burst 10 packets } log prefix "vifg-src: " level warn');
    expect(text).toContain('set log_src { type ifname; size 65536; flags dynamic,timeout; timeout 10m; }');
  });

  it('a port is elements only: prefixes collapsed, link-local from the MAC, config in the comment', () => {
    const p = bridgePort(port('vif1.0', '10.0.0.5 10.0.0.0/24 2001:db8::/64 2001:db8::7', '00:16:3e:00:00:01', 'xen:1/0'));
    expect(p.v4).toEqual(['10.0.0.0/24']);
    expect(p.v6).toEqual(['fe80::216:3eff:fe00:1', '2001:db8::/64']);
    expect(parsePortComment(p.comment)).toEqual({ guest: 'g-vif1.0', bridge: 'xenbr0', mac: '00:16:3e:00:00:01', key: 'xen:1/0', block: undefined, addresses: ['10.0.0.5/32', '10.0.0.0/24', '2001:db8::/64', '2001:db8::7/128'] });
  });

  it('identical prefixes collapse to one; disjoint ones stay', () => {
    const list = parseAddressList('10.0.0.1 10.0.0.2 10.0.1.0/24', { source: 't' });
    expect(collapse([...list, ...list]).map((a) => a.cidr)).toEqual(['10.0.0.1/32', '10.0.0.2/32', '10.0.1.0/24']);
  });

  it('a comment too long for the kernel says a=* and the sets are read instead', () => {
    const many = Array.from({ length: 40 }, (_, i) => `10.1.${i}.1`).join(' ');
    expect(portComment(port('vif1.0', many))).toMatch(/ a=\*$/);
    const desired = spec([port('vif1.0', many)]);
    expect(parseBridgeJson([guardedListing(desired)]).complete).toBe(false);
    const live = parseBridgeJson([tableListing(desired)]);
    expect(live.complete).toBe(true);
    expect(live.ports.get('vif1.0')?.v4).toHaveLength(40);
    expect(planBridge(live, desired)).toBe('');
  });
});

describe('bridge table plans', () => {
  it('from nothing: the whole table and every element in one transaction', () => {
    const desired = spec([port('vif1.0', '10.0.0.5 10.0.0.64/30')]);
    const script = planBridge(ABSENT, desired);
    expect(script.startsWith('table bridge vif_guard {}\ndelete table bridge vif_guard\ntable bridge vif_guard {\n')).toBe(true);
    // Host addresses in the hash, prefixes in the interval set (deleting from an interval set is slow).
    expect(script).toContain('add element bridge vif_guard v4 { "vif1.0" . 10.0.0.5 }');
    expect(script).toContain('add element bridge vif_guard v4net { "vif1.0" . 10.0.0.64/30 }');
    expect(script).toContain('  set v4 { type ifname . ipv4_addr; }');
    expect(script).toContain('  set v4net { type ifname . ipv4_addr; flags interval; }');
    expect(script).toContain('add element bridge vif_guard port_mac { "vif1.0" . 00:16:3e:00:00:01 }');
    expect(script).toMatch(/add element bridge vif_guard guarded_[0-9a-f]{12} \{ "vif1.0" comment "g=g-vif1.0 b=xenbr0 m=00:16:3e:00:00:01 k=- bl=- a=10.0.0.5\/32,10.0.0.64\/30" \}/);
    // The fast path is learned by the full checks: declared, bounded, never written.
    expect(script).toContain(`  set fast4 { type iface_index . ether_addr . ipv4_addr; size ${LEARNED_MAX}; flags dynamic; }`);
    expect(script).toContain('iifname @mac_ports iifname != @blocked iifname . ip saddr @v4 add @fast4 { iif . ether saddr . ip saddr }');
    expect(script).not.toMatch(/element bridge vif_guard (fast|dst)[46]/);
  });

  it('a new port leaves what was learned; one that changes or goes flushes it, and a blocklist keeps its port from learning', () => {
    const one = spec([port('vif1.0', '10.0.0.5')]);
    const two = spec([port('vif1.0', '10.0.0.5'), port('vif2.0', '10.0.0.6', '00:16:3e:00:00:02')]);
    const flushes = (script: string) => script.split('\n').filter((line) => line.startsWith('flush set bridge vif_guard '));
    expect(flushes(planBridge(parseBridgeJson([guardedListing(one)]), two))).toEqual([]);
    const all = ['fast4', 'fast6', 'dst4', 'dst6'].map((set) => `flush set bridge vif_guard ${set}`);
    expect(flushes(planBridge(parseBridgeJson([guardedListing(two)]), one))).toEqual(all);
    const blocked = buildBridgeSpec([port('vif1.0', '10.0.0.5')], settings, true, () => ({ digest: 'abc123', rules: { to: [], from: [] }, elements: () => ({ in4: ['192.0.2.0/24'], in6: [], out4: [], out6: [] }) }));
    const script = planBridge(parseBridgeJson([guardedListing(one)]), blocked);
    expect(script).toContain('add element bridge vif_guard blocked { "vif1.0" }');
    expect(flushes(script).filter((line) => /(fast|dst)[46]$/.test(line))).toEqual(all);
  });

  it('a blocklist\'s sets are concatenated (address . protocol, every protocol): nft never reads their elements before another transaction', () => {
    const blocked = buildBridgeSpec([port('vif1.0', '10.0.0.5')], settings, true, (p) => ({
      digest: 'abc123',
      rules: blockRules(p.ifname, 'abc123', settings),
      elements: () => ({ in4: ['192.0.2.0/24', '198.51.100.0-198.51.101.255'], in6: ['2001:db8::/32'], out4: [], out6: [] }),
    }));
    const script = planBridge(ABSENT, blocked);
    expect(script).toContain('add set bridge vif_guard bl_in4_vif1_d0_abc123 { type ipv4_addr . inet_proto; flags interval; }');
    expect(script).toContain('add set bridge vif_guard bl_in6_vif1_d0_abc123 { type ipv6_addr . inet_proto; flags interval; }');
    expect(script).toContain('add element bridge vif_guard bl_in4_vif1_d0_abc123 { 192.0.2.0/24 . 0-255, 198.51.100.0-198.51.101.255 . 0-255 }');
    expect(script).toContain('add element bridge vif_guard bl_in6_vif1_d0_abc123 { 2001:db8::/32 . 0-255 }');
    expect(script).toMatch(/add rule bridge vif_guard bli_vif1_d0 ip saddr \. ip protocol @bl_in4_vif1_d0_abc123 .* drop/);
    expect(script).toMatch(/add rule bridge vif_guard bli_vif1_d0 ip6 saddr \. ip6 nexthdr @bl_in6_vif1_d0_abc123 .* drop/);
    // No single-field interval set anywhere in the table: nft 1.0.6 reads all of those before any element change.
    expect(script).not.toMatch(/type (ipv4_addr|ipv6_addr|ifname|ether_addr); flags interval/);
  });

  it('a replaced blocklist is new sets, filled before the chains switch to them; the old sets are deleted whole, never emptied', () => {
    const withList = (digest: string) =>
      buildBridgeSpec([port('vif1.0', '10.0.0.5')], settings, true, (p) => ({ digest, rules: blockRules(p.ifname, digest, settings), elements: () => ({ in4: ['192.0.2.0/24'], in6: [], out4: [], out6: [] }) }));
    const [old, replaced] = [withList('aaa111'), withList('bbb222')];
    if (!old || !replaced) throw new Error('no spec');
    const live = parseBridgeJson([tableListing(old)]);
    const lines = planBridge(live, replaced).split('\n');
    const at = (pattern: RegExp) => lines.findIndex((line) => pattern.test(line));
    expect(lines).toContain('add element bridge vif_guard bl_in4_vif1_d0_bbb222 { 192.0.2.0/24 . 0-255 }');
    expect(lines).toContain('delete set bridge vif_guard bl_in4_vif1_d0_aaa111');
    expect(lines.filter((line) => /^flush set .*_aaa111$/.test(line))).toEqual([]);
    expect(at(/^add rule bridge vif_guard bli_vif1_d0 .*@bl_in4_vif1_d0_bbb222/)).toBeGreaterThan(at(/^flush chain bridge vif_guard bli_vif1_d0$/));
    expect(at(/^delete set bridge vif_guard bl_in4_vif1_d0_aaa111$/)).toBeGreaterThan(at(/^flush chain bridge vif_guard bli_vif1_d0$/));
    // Unblocked: the sets of the lists it had go.
    const none = buildBridgeSpec([port('vif1.0', '10.0.0.5')], settings, true);
    expect(planBridge(live, none).split('\n')).toContain('delete set bridge vif_guard bl_out6_vif1_d0_aaa111');
    // A record whose digest is not hex is not trusted (it names sets in nft scripts).
    expect(parsePortComment('g=web b=xenbr0 m=- k=- bl=x;flush a=-')).toBeUndefined();
  });

  it('a blocked port missing from the blocked set (edited by hand) is put back, and the fast path flushed', () => {
    const blocked = buildBridgeSpec([port('vif1.0', '10.0.0.5')], settings, true, () => ({ digest: 'abc123', rules: { to: [], from: [] }, elements: () => ({ in4: ['192.0.2.0/24'], in6: [], out4: [], out6: [] }) }));
    if (!blocked) throw new Error('no spec');
    const listing = (members: string[]) => {
      const json = JSON.parse(tableListing(blocked)) as { nftables: unknown[] };
      json.nftables.push({ set: { family: 'bridge', table: 'vif_guard', name: 'blocked', elem: members } });
      return JSON.stringify(json);
    };
    // The blocklist's own sets and chains are not in this listing: only what the blocked set changes is asserted.
    const lines = (members: string[]) => planBridge(parseBridgeJson([listing(members)]), blocked).split('\n').filter((line) => / (blocked|fast4|dst4)\b/.test(line) && !line.includes('bl_'));
    expect(lines(['vif1.0'])).toEqual([]);
    expect(lines([])).toEqual(['add element bridge vif_guard blocked { "vif1.0" }', 'flush set bridge vif_guard fast4', 'flush set bridge vif_guard dst4']);
  });

  it('records written with the interface index (before the fast path was learned) still read', () => {
    expect(parsePortComment('g=web b=xenbr0 m=00:16:3e:00:00:01 k=xen:1/0 i=7 bl=- a=10.0.0.5/32')).toEqual({ guest: 'web', bridge: 'xenbr0', mac: '00:16:3e:00:00:01', key: 'xen:1/0', block: undefined, addresses: ['10.0.0.5/32'] });
  });

  it('the same state again sends nothing, read from the hook listing or the whole table', () => {
    const desired = spec([port('vif1.0', '10.0.0.5 2001:db8::/64')]);
    expect(planBridge(parseBridgeJson([guardedListing(desired)]), desired)).toBe('');
    expect(planBridge(parseBridgeJson([tableListing(desired)]), desired)).toBe('');
  });

  it('a new guest adds only its elements; nothing about the others is sent', () => {
    const one = spec([port('vif1.0', '10.0.0.5')]);
    const two = spec([port('vif1.0', '10.0.0.5'), port('vif2.0', '10.0.0.6', '00:16:3e:00:00:02')]);
    const lines = planBridge(parseBridgeJson([guardedListing(one)]), two).trimEnd().split('\n');
    expect(lines.every((line) => line.startsWith('add element') && !line.includes('vif1.0'))).toBe(true);
    expect(lines).toContain('add element bridge vif_guard v4 { "vif2.0" . 10.0.0.6 }');
    expect(lines).toContain('add element bridge vif_guard macs { 00:16:3e:00:00:02 }');
  });

  it('a changed address moves only that element, and the fast path forgets what it learned; deletes cannot fail on an element already gone', () => {
    const before = spec([port('vif1.0', '10.0.0.5 10.0.0.9')]);
    const after = spec([port('vif1.0', '10.0.0.6 10.0.0.9')]);
    const lines = planBridge(parseBridgeJson([guardedListing(before)]), after).trimEnd().split('\n');
    const guarded = `guarded_${after.digest}`;
    expect(lines).toEqual([
      expect.stringMatching(new RegExp(`^add element bridge vif_guard ${guarded} \\{ "vif1.0" comment ".*a=10.0.0.5/32,10.0.0.9/32" \\}$`)),
      expect.stringMatching(new RegExp(`^delete element bridge vif_guard ${guarded} \\{ "vif1.0" comment`)),
      'add element bridge vif_guard v4 { "vif1.0" . 10.0.0.5 }',
      'delete element bridge vif_guard v4 { "vif1.0" . 10.0.0.5 }',
      expect.stringMatching(new RegExp(`^add element bridge vif_guard ${guarded} \\{ "vif1.0" comment ".*a=10.0.0.6/32,10.0.0.9/32" \\}$`)),
      'add element bridge vif_guard v4 { "vif1.0" . 10.0.0.6 }',
      'flush set bridge vif_guard fast4',
      'flush set bridge vif_guard fast6',
      'flush set bridge vif_guard dst4',
      'flush set bridge vif_guard dst6',
    ]);
  });

  it('a removed port takes its elements and its drop counters with it', () => {
    const two = spec([port('vif1.0', '10.0.0.5'), port('vif2.0', '10.0.0.6 10.0.1.0/29 2001:db8:1::/64 2001:db8:2::/48', '00:16:3e:00:00:02')]);
    const one = spec([port('vif1.0', '10.0.0.5')]);
    const script = planBridge(parseBridgeJson([guardedListing(two)]), one);
    expect(script).toContain('delete element bridge vif_guard v4 { "vif2.0" . 10.0.0.6 }');
    expect(script).toContain('delete element bridge vif_guard v4net { "vif2.0" . 10.0.1.0/29 }');
    // A /64 is a hash element (looked up masked to /64); other prefixes are intervals.
    expect(script).toContain('delete element bridge vif_guard v6p64 { "vif2.0" . 2001:db8:1:: }');
    expect(script).toContain('delete element bridge vif_guard v6net { "vif2.0" . 2001:db8:2::/48 }');
    expect(script).toContain('delete element bridge vif_guard v6 { "vif2.0" . fe80::216:3eff:fe00:2 }');
    expect(script).toContain('delete element bridge vif_guard cnt_src { "vif2.0" }');
    expect(script).toContain('delete element bridge vif_guard macs { 00:16:3e:00:00:02 }');
    expect(script).not.toContain('"vif1.0"');
  });

  it('neighbour advertisement targets: the IPv6 addresses again, as the 128-bit integers a raw field is compared with', () => {
    const desired = spec([port('vif1.0', '10.0.0.5 2001:db8::5 2001:db8:1::/64 2001:db8:200::/56')]);
    const script = planBridge(ABSENT, desired);
    expect(script).toContain('  set nd6 { typeof iifname . @th,64,128; }');
    expect(script).toContain('  set nd6net { typeof iifname . @th,64,128; flags interval; }');
    expect(script).toContain('    icmpv6 type nd-neighbor-advert jump from_nd');
    // Its own addresses and its link-local (from the MAC 00:16:3e:00:00:01).
    expect(script).toContain('add element bridge vif_guard nd6 { "vif1.0" . 0xfe8000000000000002163efffe000001, "vif1.0" . 0x20010db8000000000000000000000005 }');
    // A /64 as its network (the rule masks the target to /64), other prefixes as ranges.
    expect(script).toContain('add element bridge vif_guard nd6p64 { "vif1.0" . 0x20010db8000100000000000000000000 }');
    expect(script).toContain('add element bridge vif_guard nd6net { "vif1.0" . 0x20010db8020000000000000000000000-0x20010db8020000ffffffffffffffffff }');
    // They go with the port.
    const removed = planBridge(parseBridgeJson([guardedListing(desired)]), spec([port('vif2.0', '10.0.0.6', '00:16:3e:00:00:02')]));
    expect(removed).toContain('delete element bridge vif_guard nd6net { "vif1.0" . 0x20010db8020000000000000000000000-0x20010db8020000ffffffffffffffffff }');
    expect(removed).toContain('delete element bridge vif_guard nd6 { "vif1.0" . 0xfe8000000000000002163efffe000001, "vif1.0" . 0x20010db8000000000000000000000005 }');
  });

  it('another layout rebuilds the table; nothing left removes it', () => {
    const ip = spec([port('vif1.0', '10.0.0.5')], true);
    const l2 = spec([port('vif1.0', '10.0.0.5')], false);
    expect(planBridge(parseBridgeJson([tableListing(ip)]), l2)).toContain('delete table bridge vif_guard');
    expect(planBridge(parseBridgeJson([tableListing(ip)]), undefined)).toBe('delete table bridge vif_guard\n');
    expect(planBridge(ABSENT, undefined)).toBe('');
  });

  it('reads the layout, the mode, per-port counters, and ignores other tables', () => {
    const desired = spec([port('vif1.0', '10.0.0.5')]);
    const live = parseBridgeJson([tableListing(desired, { mac: { 'vif1.0': 7 }, src: { 'vif1.0': 3 } })]);
    expect(live.digest).toBe(desired.digest);
    expect(live.ip).toBe(true);
    expect(live.counters.get('vif1.0')?.get('mac')).toEqual({ packets: 7, bytes: 700 });
    expect(live.counters.get('vif1.0')?.get('src')).toEqual({ packets: 3, bytes: 300 });
    expect([...live.ports.keys()]).toEqual(['vif1.0']);
    expect(portMatches(live.ports.get('vif1.0'), desired.ports[0]!, true)).toBe(true);
  });

  it('layer 2 only keeps IPv6 out of the elements and the comment', () => {
    const l2 = spec([port('vif1.0', '10.0.0.5 2001:db8::1')], false);
    expect(l2.ports[0]?.comment).toMatch(/a=10.0.0.5\/32$/);
    expect(planBridge(ABSENT, l2)).not.toContain('add element bridge vif_guard v6');
  });

  describe('sync reads every set in two interactive nft processes, side by side', () => {
    const desired = spec([port('vif1.0', '10.0.0.5 2001:db8::/64'), port('vif2.0', '10.0.0.6', '00:16:3e:00:00:02')]);
    /** What sync does: list the sets, then parse them (or the whole table). */
    const readBridgeSets = async (runner: Runner, expected: typeof desired) => parseBridgeSets(runner, expected, await listBridgeSets(runner, expected));
    const sets = (JSON.parse(tableListing(desired)) as { nftables: { set?: { name: string; table: string } }[] }).nftables.filter((item) => item.set?.table === 'vif_guard');
    /** nft -j -i: each input line a command, each found set one JSON document on a line of its own. */
    const interactive = (missing: readonly string[] = []) => (call: { args: readonly string[]; input: string | undefined }) => {
      if (call.args.join(' ') === '-j list table bridge vif_guard') return { stdout: tableListing(desired) };
      const names = (call.input ?? '').trim().split('\n').map((line) => line.split(' ').at(-1)!);
      const found = names.filter((name) => !missing.includes(name));
      return {
        stdout: found.map((name) => `${JSON.stringify({ nftables: [{ metainfo: {} }, sets.find((item) => item.set?.name === name) ?? { set: { family: 'bridge', table: 'vif_guard', name, elem: [] } }] })}\n`).join(''),
        stderr: missing.map((name) => `Error: No such file or directory\nlist set bridge vif_guard ${name}\n`).join(''),
      };
    };

    it('two processes, every set once, the same state a whole-table listing gives', async () => {
      const { runner, calls } = createRecordingRunner(interactive());
      const live = await readBridgeSets(runner, desired);
      expect(calls.map((call) => call.args.join(' '))).toEqual(['-j -i', '-j -i']);
      const listed = calls.flatMap((call) => call.input?.split('\n').filter(Boolean) ?? []);
      expect(listed.sort()).toEqual([`guarded_${desired.digest}`, 'v4', 'v4net', 'port_mac', 'mac_ports', 'macs', 'v6', 'v6p64', 'v6net', 'blocked'].map((name) => `list set bridge vif_guard ${name}`).sort());
      const whole = parseBridgeJson([tableListing(desired)]);
      expect([...live.ports.keys()]).toEqual([...whole.ports.keys()]);
      for (const wanted of desired.ports) expect(portMatches(live.ports.get(wanted.ifname), wanted, true)).toBe(true);
      expect(planBridge(live, desired)).toBe('');
    });

    it('a set missing, or an nft without interactive mode: the whole table is listed instead', async () => {
      const gone = createRecordingRunner(interactive(['v6p64']));
      expect(planBridge(await readBridgeSets(gone.runner, desired), desired)).toBe('');
      expect(gone.calls.map((call) => call.args.join(' '))).toEqual(['-j -i', '-j -i', '-j list table bridge vif_guard']);
      const old = createRecordingRunner((call) => (call.args.includes('-i') ? { exitCode: 1, stderr: 'Error: interactive CLI not supported in this build\n' } : interactive()(call)));
      expect(planBridge(await readBridgeSets(old.runner, desired), desired)).toBe('');
      expect(old.calls.map((call) => call.args.join(' '))).toEqual(['-j -i', '-j -i', '-j list table bridge vif_guard']);
    });
  });
});

describe('the chains of a full listing (doctor compares them with what vif-guard writes)', () => {
  // As nft 1.0.6 prints them with -j (trimmed to the fields read).
  const listing = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'bridge', name: 'vif_guard', handle: 1 } },
      { set: { family: 'bridge', name: 'guarded_0123456789ab', table: 'vif_guard', type: 'ifname', handle: 2 } },
      { chain: { family: 'bridge', table: 'vif_guard', name: 'from_nd', handle: 3 } },
      { chain: { family: 'bridge', table: 'vif_guard', name: 'from_guest_0123456789ab', handle: 4, type: 'filter', hook: 'prerouting', prio: -290, policy: 'accept' } },
      { rule: { family: 'bridge', table: 'vif_guard', chain: 'from_nd', handle: 5, expr: [{ match: { op: '==', left: { concat: [] }, right: '@nd6' } }, { return: null }] } },
      { rule: { family: 'bridge', table: 'vif_guard', chain: 'from_nd', handle: 6, expr: [{ set: { op: 'add', elem: { meta: { key: 'iifname' } }, set: '@log_nd_target' } }, { log: { prefix: 'vifg-nd_target: ' } }] } },
      { rule: { family: 'bridge', table: 'vif_guard', chain: 'from_nd', handle: 7, expr: [{ set: { op: 'add', elem: { meta: { key: 'iifname' } }, set: '@cnt_nd_target' } }, { drop: null }] } },
      { rule: { family: 'bridge', table: 'vif_guard', chain: 'from_guest_0123456789ab', handle: 8, expr: [{ notrack: null }, { accept: null }] } },
      { rule: { family: 'bridge', table: 'vif_guard', chain: 'from_guest_0123456789ab', handle: 9, expr: [{ match: { op: '==', left: { payload: {} }, right: 58 } }, { jump: { target: 'from_nd' } }] } },
      { rule: { family: 'bridge', table: 'vif_guard', chain: 'from_guest_0123456789ab', handle: 10, expr: [{ vmap: { key: { meta: { key: 'iifname' } }, data: '@block_from' } }] } },
      // Someone else's table in the same listing is not vif-guard's.
      { rule: { family: 'bridge', table: 'other', chain: 'from_nd', handle: 11, expr: [{ accept: null }] } },
    ],
  });

  it('reads each chain\'s hook and its rules\' verdicts in order', () => {
    const live = parseBridgeJson([listing]);
    expect(Object.fromEntries(live.chains ?? [])).toEqual({
      from_nd: { hook: undefined, verdicts: ['return', '-', 'drop'] },
      from_guest_0123456789ab: { hook: 'prerouting -290 accept', verdicts: ['accept', 'jump from_nd', 'vmap'] },
    });
  });

  it('a listing of sets alone has no chains to compare, not empty ones', () => {
    expect(parseBridgeJson([JSON.stringify({ nftables: [{ set: { family: 'bridge', name: 'v4', table: 'vif_guard', elem: [] } }] })]).chains).toBeUndefined();
  });
});
