import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { blockElements, mergeV4 } from '../../../lib/rules/bridge.js';
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
