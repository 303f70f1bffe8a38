import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { blockChainShapes, blockElements, bridgeSkeleton, chainShapes, mergeV4, ruleVerdict, type ChainShape } from '../../../lib/rules/bridge.js';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { parseBlockPrefix } from '../../../lib/guest/validate.js';

const toInt = (dotted: string) => dotted.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);

/** The addresses an element covers, as [first, last]. */
function span(element: string): [number, number] {
  if (element.includes('-')) {
    const [a = '', b = ''] = element.split('-');
    return [toInt(a), toInt(b)];
  }
  const [address = '', prefix = '32'] = element.split('/');
  return [toInt(address), toInt(address) + 2 ** (32 - Number(prefix)) - 1];
}

describe('mergeV4', () => {
  it('adjacent and overlapping prefixes become one range; an exact prefix stays a prefix', () => {
    const list = ['60.0.1.0/24', '60.0.2.0/24', '60.0.3.0/24', '10.0.0.0/8', '10.1.0.0/16', '192.0.2.7', '192.0.2.6/32', '198.51.100.0/25', '198.51.100.128/25'].map((p) => parseBlockPrefix(p, { source: 't' }));
    expect(mergeV4(list)).toEqual(['10.0.0.0/8', '60.0.1.0-60.0.3.255', '192.0.2.6/31', '198.51.100.0/24']);
  });

  it('covers exactly the addresses of its input, with sorted elements that neither overlap nor touch', () => {
    const prefix = fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 20, max: 32 })).map(([n, len]) => parseBlockPrefix(`10.0.${n >> 4}.${(n & 15) * 16}/${len}`, { source: 't' }));
    fc.assert(
      fc.property(fc.array(prefix, { maxLength: 60 }), (list) => {
        const spans = mergeV4(list).map(span);
        for (let i = 1; i < spans.length; i += 1) expect((spans[i]?.[0] ?? 0) > (spans[i - 1]?.[1] ?? 0) + 1).toBe(true);
        const inside = (x: number, ranges: [number, number][]) => ranges.some(([a, b]) => x >= a && x <= b);
        const input = list.map((p) => span(p.cidr));
        const edges = input.flatMap(([a, b]) => [a - 1, a, b, b + 1]).concat(spans.flatMap(([a, b]) => [a - 1, a, b, b + 1]));
        for (const x of edges) expect(inside(x, spans)).toBe(inside(x, input));
      }),
      { numRuns: 300 },
    );
  });

  it('blockElements: IPv6 keeps its prefixes, covered ones dropped', () => {
    const list = ['2001:db8::/32', '2001:db8:1::/48', '2001:db9::/32', '192.0.2.0/24'].map((p) => parseBlockPrefix(p, { source: 't' }));
    expect(blockElements(list, [])).toEqual({ in4: ['192.0.2.0/24'], in6: ['2001:db8::/32', '2001:db9::/32'], out4: [], out6: [] });
  });
});

describe('chain shapes: what vif-guard writes, as doctor compares it', () => {
  it('names the verdict each rule ends in', () => {
    expect(ruleVerdict('iifname != @guarded_x accept')).toBe('accept');
    expect(ruleVerdict('iifname != @guarded_x meta pkttype other ether daddr @macs notrack accept comment "to a guest"')).toBe('accept');
    expect(ruleVerdict('meta pkttype other notrack comment "from a guest"')).toBe('-');
    expect(ruleVerdict('add @cnt_src { iifname counter } drop')).toBe('drop');
    expect(ruleVerdict('add @log_src { iifname limit rate 6/minute burst 10 packets } log prefix "vifg-src: " level warn')).toBe('-');
    expect(ruleVerdict('icmpv6 type nd-neighbor-advert jump from_nd')).toBe('jump from_nd');
    expect(ruleVerdict('ether type vmap { arp : jump from_arp, ip : jump from_ip4, ip6 : jump from_ip6 }')).toBe('vmap');
    expect(ruleVerdict('iifname vmap @block_from')).toBe('vmap');
    expect(ruleVerdict('iifname . ip saddr @v4 return')).toBe('return');
  });

  it('reads every chain of the skeleton with its hook; logging adds rules without a verdict', () => {
    const shapes = chainShapes(bridgeSkeleton({ ...DEFAULT_SETTINGS, log: false }, true).body);
    const digest = bridgeSkeleton({ ...DEFAULT_SETTINGS, log: false }, true).digest;
    expect([...shapes.keys()].sort()).toEqual(['from_arp', 'from_guest_' + digest, 'from_ip4', 'from_ip6', 'from_nd', 'to_guest_' + digest, 'to_ip4', 'to_ip6'].sort());
    expect(shapes.get(`from_guest_${digest}`)?.hook).toBe('prerouting -290 accept');
    expect(shapes.get(`to_guest_${digest}`)?.hook).toBe('forward 0 accept');
    expect(shapes.get('from_nd')).toEqual({ hook: undefined, verdicts: ['return', 'return', 'return', 'drop'] });
    const logged = chainShapes(bridgeSkeleton({ ...DEFAULT_SETTINGS, log: true }, true).body);
    expect(logged.get('from_nd')?.verdicts).toEqual(['return', 'return', 'return', '-', 'drop']);
    // Layer 2 alone (the iptables backend) has the ARP chain and one base chain.
    expect([...chainShapes(bridgeSkeleton(DEFAULT_SETTINGS, false).body).keys()]).toHaveLength(2);
  });

  it('a blocked port has two chains of drops (and log rules)', () => {
    const [[to, toShape], [from, fromShape]] = blockChainShapes('vif1.0', 'abc123', { ...DEFAULT_SETTINGS, log: false }) as [[string, ChainShape], [string, ChainShape]];
    expect([to, from]).toEqual(['bli_vif1_d0', 'blo_vif1_d0']);
    expect(toShape).toEqual({ hook: undefined, verdicts: ['drop', 'drop'] });
    expect(fromShape).toEqual({ hook: undefined, verdicts: ['drop', 'drop'] });
  });
});
