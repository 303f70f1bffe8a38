import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { ebtablesCounters, ebtablesCurrent, parseEbtablesList, planEbtables, planEbtablesEvent, type LiveEbChain } from '../../../lib/backend/ebtables.js';
import { buildEbtables, EB_ROOT, ebPortChain, renderEbRules } from '../../../lib/rules/ebtables.js';
import type { BridgePort } from '../../../lib/rules/types.js';

// `ebtables-nft -t nat -L --Lc` as printed by ebtables 1.8.9 for one port (captured in a namespace).
const LISTED = `Bridge table: nat

Bridge chain: PREROUTING, entries: 2, policy: ACCEPT
-j vif-guard-l2 , pcnt = 40 -- bcnt = 2400
-i eth9 -j ACCEPT , pcnt = 0 -- bcnt = 0

Bridge chain: OUTPUT, entries: 0, policy: ACCEPT

Bridge chain: POSTROUTING, entries: 0, policy: ACCEPT

Bridge chain: vgl2-p-vif1.0-abc123, entries: 11, policy: RETURN
-s ! 02:00:00:00:0a:0b --limit 6/min --limit-burst 10 --log-level warning --log-prefix "vifg-mac:" -j CONTINUE , pcnt = 2 -- bcnt = 120
-s ! 02:00:00:00:0a:0b -j DROP , pcnt = 2 -- bcnt = 120
-p IPv4 -j RETURN , pcnt = 30 -- bcnt = 1800
-p IPv6 -j RETURN , pcnt = 0 -- bcnt = 0
-p ARP --arp-mac-src ! 02:00:00:00:0a:0b -j DROP , pcnt = 3 -- bcnt = 126
-p ARP --arp-ip-src 0.0.0.0 -j RETURN , pcnt = 0 -- bcnt = 0
-p ARP --arp-ip-src 10.0.0.5 -j RETURN , pcnt = 1 -- bcnt = 42
-p ARP -j DROP , pcnt = 4 -- bcnt = 168
-p 802_1Q -j RETURN , pcnt = 0 -- bcnt = 0
-j DROP , pcnt = 5 -- bcnt = 300

Bridge chain: vif-guard-l2, entries: 1, policy: RETURN
-i vif1.0 -j vgl2-p-vif1.0-abc123 , pcnt = 40 -- bcnt = 2400
`;

/** ebtables-restore --noflush on a model of the nat table: refuses what the real tool refuses. */
function restore(table: Map<string, { policy: string; rules: string[] }>, lines: readonly string[]): void {
  const chain = (name: string) => {
    const found = table.get(name);
    if (!found) throw new Error(`no chain ${name}`);
    return found;
  };
  const referenced = (name: string) => [...table.values()].some((c) => c.rules.some((rule) => rule.endsWith(`-j ${name}`)));
  for (const line of lines) {
    const [op, name = '', ...rest] = line.split(' ');
    const body = rest.join(' ');
    const target = / -j (\S+)$/.exec(` ${body}`)?.[1];
    if ((op === '-A' || op === '-I') && target && !['DROP', 'RETURN', 'ACCEPT', 'CONTINUE'].includes(target)) chain(target);
    if (op === '-N') {
      if (table.has(name)) throw new Error(`chain ${name} exists`);
      table.set(name, { policy: rest[1] ?? 'ACCEPT', rules: [] });
    } else if (op === '-A') chain(name).rules.push(body);
    else if (op === '-I') chain(name).rules.splice(Number(rest[0]) - 1, 0, rest.slice(1).join(' '));
    else if (op === '-D') {
      const rules = chain(name).rules;
      const at = rules.indexOf(body);
      if (at < 0) throw new Error(`no rule ${body}`);
      rules.splice(at, 1);
    } else if (op === '-F') chain(name).rules = [];
    else if (op === '-P') chain(name).policy = body;
    else if (op === '-X') {
      if (referenced(name) || chain(name).rules.length) throw new Error(`chain ${name} busy`);
      table.delete(name);
    } else throw new Error(`unknown ${line}`);
  }
}

const asLive = (table: Map<string, { policy: string; rules: string[] }>): Map<string, LiveEbChain> =>
  new Map([...table].map(([name, c]) => [name, { policy: c.policy, rules: [...c.rules], counters: c.rules.map(() => ({ packets: 0, bytes: 0 })) }]));

const port = (ifname: string, n = 0): BridgePort => ({ ifname, mac: `02:00:00:00:00:${(n % 256).toString(16).padStart(2, '0')}`, v4: [`10.0.0.${n % 256}`], v6: [], comment: '' });

describe('ebtables backend', () => {
  it('reads chains, rules and counters as ebtables prints them, and counts drops per port and class', () => {
    const live = parseEbtablesList(LISTED);
    expect([...live.keys()]).toEqual(['PREROUTING', 'OUTPUT', 'POSTROUTING', 'vgl2-p-vif1.0-abc123', EB_ROOT]);
    expect(live.get('PREROUTING')?.rules).toEqual(['-j vif-guard-l2', '-i eth9 -j ACCEPT']);
    expect(live.get(EB_ROOT)?.policy).toBe('RETURN');
    const counts = ebtablesCounters(live).get('vif1.0');
    expect(Object.fromEntries([...(counts ?? [])].map(([cls, c]) => [cls, c.packets]))).toEqual({ mac: 2, arp_mac: 3, arp_ip: 4, ethertype: 5 });
  });

  it('from nothing: chains created before anything jumps to them, the jump inserted first in PREROUTING', () => {
    const desired = buildEbtables([port('vif1.0', 1), port('vif2.0', 2)], DEFAULT_SETTINGS);
    const table = new Map([['PREROUTING', { policy: 'ACCEPT', rules: ['-i eth9 -j ACCEPT'] }]]);
    const lines = planEbtables(asLive(table), desired);
    expect(lines.filter((line) => line.startsWith('-N '))).toHaveLength(desired.length);
    expect(lines.at(-1)).toBe('-I PREROUTING 1 -j vif-guard-l2');
    restore(table, lines);
    expect(table.get('PREROUTING')?.rules).toEqual(['-j vif-guard-l2', '-i eth9 -j ACCEPT']);
    expect(ebtablesCurrent(asLive(table), desired)).toBe(true);
  });

  it('a jump pushed down by a foreign rule goes back on top; duplicates go', () => {
    const desired = buildEbtables([port('vif1.0', 1)], DEFAULT_SETTINGS);
    const table = new Map([['PREROUTING', { policy: 'ACCEPT', rules: [] as string[] }]]);
    restore(table, planEbtables(asLive(table), desired));
    table.get('PREROUTING')?.rules.unshift('-i vif1.0 -j ACCEPT');
    table.get('PREROUTING')?.rules.push('-j vif-guard-l2');
    const lines = planEbtables(asLive(table), desired);
    expect(lines).toEqual(['-D PREROUTING -j vif-guard-l2', '-D PREROUTING -j vif-guard-l2', '-I PREROUTING 1 -j vif-guard-l2']);
    restore(table, lines);
    expect(table.get('PREROUTING')?.rules).toEqual(['-j vif-guard-l2', '-i vif1.0 -j ACCEPT']);
  });

  it('any event from any state: the model ends exactly as desired, foreign chains and rules kept, unchanged ports untouched', () => {
    const name = fc.constantFrom('vif1.0', 'vif1.1', 'vif2.0', 'vif12.0', 'vif123.0', 'veth101.0', 'vif1', 'tap0');
    const config = fc.uniqueArray(fc.record({ ifname: name, n: fc.integer({ min: 1, max: 3 }) }), { selector: (p) => p.ifname, maxLength: 8 });
    fc.assert(
      fc.property(config, config, (before, after) => {
        const table = new Map([
          ['PREROUTING', { policy: 'ACCEPT', rules: ['-i eth9 -j ACCEPT'] }],
          ['foreign', { policy: 'RETURN', rules: ['-i vif1+ -j DROP'] }],
        ]);
        const first = buildEbtables(before.map((p) => port(p.ifname, p.n)), DEFAULT_SETTINGS);
        restore(table, planEbtables(asLive(table), first));
        const desired = buildEbtables(after.map((p) => port(p.ifname, p.n)), DEFAULT_SETTINGS);
        const lines = planEbtables(asLive(table), desired);
        restore(table, lines);
        const ours = [...table.keys()].filter((key) => key !== 'PREROUTING' && key !== 'foreign').sort();
        expect(ours).toEqual(desired.map((chain) => chain.name).sort());
        for (const chain of desired) expect(table.get(chain.name)?.rules).toEqual(renderEbRules(chain.rules));
        expect(table.get('foreign')?.rules).toEqual(['-i vif1+ -j DROP']);
        expect(table.get('PREROUTING')?.rules).toEqual([...(desired.length ? ['-j vif-guard-l2'] : []), '-i eth9 -j ACCEPT']);
        // A port configured the same before and after keeps its chain: not flushed, not re-added.
        const kept = first.filter((chain) => chain.name.startsWith('vgl2-p-') && desired.some((d) => d.name === chain.name));
        for (const chain of kept) expect(lines.some((line) => line.startsWith(`-F ${chain.name}`) || line.startsWith(`-A ${chain.name} `))).toBe(false);
        expect(planEbtables(asLive(table), desired)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('a hook from the cached names alone: any up or down ends exactly where a full plan would, and sends only what changes', () => {
    const name = fc.constantFrom('vif1.0', 'vif1.1', 'vif2.0', 'vif12.0', 'vif123.0', 'veth101.0', 'vif1', 'tap0');
    const config = fc.uniqueArray(fc.record({ ifname: name, n: fc.integer({ min: 1, max: 3 }) }), { selector: (p) => p.ifname, maxLength: 8 });
    fc.assert(
      fc.property(config, name, fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }), fc.boolean(), (before, target, n, jumpPushedDown) => {
        const table = new Map([['PREROUTING', { policy: 'ACCEPT', rules: ['-i eth9 -j ACCEPT'] }]]);
        const ports = new Map(before.map((p) => [p.ifname, port(p.ifname, p.n)]));
        restore(table, planEbtables(asLive(table), buildEbtables([...ports.values()], DEFAULT_SETTINGS)));
        if (jumpPushedDown && ports.size) table.get('PREROUTING')?.rules.reverse();
        const chainOf = (ifname: string) => {
          const known = ports.get(ifname);
          return known && ebPortChain(known, DEFAULT_SETTINGS).name;
        };
        const after = new Map(ports);
        if (n === undefined) after.delete(target);
        else after.set(target, port(target, n));
        const newChain = n === undefined ? undefined : ebPortChain(port(target, n), DEFAULT_SETTINGS);
        const lines = planEbtablesEvent({
          before: [...ports.keys()],
          after: [...after.keys()],
          target,
          oldChain: chainOf(target),
          newChain,
          chainOf,
          prerouting: table.get('PREROUTING')?.rules ?? [],
        });
        expect(lines).toBeDefined();
        restore(table, lines ?? []);
        const desired = buildEbtables([...after.values()], DEFAULT_SETTINGS);
        expect(planEbtables(asLive(table), desired)).toEqual([]);
        for (const chain of desired) expect(table.get(chain.name)?.rules).toEqual(renderEbRules(chain.rules));
        // Nothing about other ports' chains is sent.
        for (const [ifname, other] of ports) if (ifname !== target) expect(lines?.some((line) => line.includes(` ${ebPortChain(other, DEFAULT_SETTINGS).name} `) && !line.startsWith('-A vgl2-d-') && !line.startsWith('-A vif-guard-l2'))).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});
