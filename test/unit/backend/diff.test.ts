import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planPortEvent, planTable, renderRestorePayload } from '../../../lib/backend/diff.js';
import { renderRuleBody } from '../../../lib/backend/render.js';
import { buildFilterTable, FILTER_JUMPS } from '../../../lib/rules/build.js';
import { parseSave } from '../../../lib/backend/save-parse.js';
import type { TableSpec } from '../../../lib/rules/types.js';

const FOREIGN = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd
-A FORWARD -m physdev --physdev-is-bridged --physdev-in vif1.0 -j ACCEPT
-A f2b-sshd -j RETURN
COMMIT
`;

const desired: TableSpec = {
  table: 'filter',
  chains: [
    { name: 'vif-guard-fwd', rules: [['-j', 'vif-guard-in']] },
    { name: 'vif-guard-in', rules: [] },
  ],
  jumps: [{ chain: 'FORWARD', rule: ['-m', 'physdev', '--physdev-is-bridged', '-j', 'vif-guard-fwd'] }],
};

describe('planTable', () => {
  it('from nothing: declares chains (each after those it jumps to), fills them, puts the jump first; never names a foreign rule', () => {
    const plan = planTable(parseSave(FOREIGN, 'filter'), desired);
    expect(renderRestorePayload(plan)).toBe(`*filter
:vif-guard-in - [0:0]
:vif-guard-fwd - [0:0]
-A vif-guard-fwd -j vif-guard-in
-I FORWARD 1 -m physdev --physdev-is-bridged -j vif-guard-fwd
COMMIT
`);
  });

  it('the same state again plans nothing', () => {
    const live = `*filter
:FORWARD ACCEPT [0:0]
:vif-guard-fwd - [0:0]
:vif-guard-in - [0:0]
-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd
-A FORWARD -s 192.0.2.0/24 -j ACCEPT
-A vif-guard-fwd -j vif-guard-in
COMMIT
`;
    const plan = planTable(parseSave(live, 'filter'), desired);
    expect(plan.lines).toEqual([]);
    expect(renderRestorePayload(plan)).toBe('');
  });

  it('moves its jump back to the top when something was inserted above it (stock vif-bridge does -I FORWARD)', () => {
    const live = `*filter
:FORWARD ACCEPT [0:0]
:vif-guard-fwd - [0:0]
:vif-guard-in - [0:0]
-A FORWARD -m physdev --physdev-is-bridged --physdev-in vif3.0 -j ACCEPT
-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd
-A vif-guard-fwd -j vif-guard-in
COMMIT
`;
    expect(planTable(parseSave(live, 'filter'), desired).lines).toEqual([
      '-D FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd',
      '-I FORWARD 1 -m physdev --physdev-is-bridged -j vif-guard-fwd',
    ]);
  });

  it('rewrites only changed chains and removes stale ones after their references are gone', () => {
    const live = `*filter
:FORWARD ACCEPT [0:0]
:vif-guard-fwd - [0:0]
:vif-guard-in - [0:0]
:vif-guard-i-old - [0:0]
-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd
-A vif-guard-fwd -j vif-guard-in
-A vif-guard-in -m physdev --physdev-in old -j vif-guard-i-old
-A vif-guard-i-old -j DROP
COMMIT
`;
    const plan = planTable(parseSave(live, 'filter'), desired);
    expect(plan.lines).toEqual(['-F vif-guard-in', '-F vif-guard-i-old', '-X vif-guard-i-old']);
    expect(plan.changed).toEqual(['vif-guard-in']);
    expect(plan.removed).toEqual(['vif-guard-i-old']);
  });

  it('removing everything deletes the jumps before the chains', () => {
    const live = `*filter
:FORWARD ACCEPT [0:0]
:vif-guard-fwd - [0:0]
-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd
-A FORWARD -j ACCEPT
COMMIT
`;
    expect(planTable(parseSave(live, 'filter'), { table: 'filter', chains: [], jumps: [] }).lines).toEqual([
      '-D FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd',
      '-F vif-guard-fwd',
      '-X vif-guard-fwd',
    ]);
  });
});

/** iptables-restore --noflush on a model of the table: `:` creates or flushes, -F needs the chain, -X an empty unreferenced one, -C an existing rule. */
function restoreOnModel(table: Map<string, string[]>, lines: readonly string[]): void {
  for (const line of lines) {
    const [verb, chain = '', ...rest] = line.split(' ');
    const body = rest.join(' ');
    if (verb?.startsWith(':')) table.set(verb.slice(1), []);
    else if (verb === '-A') {
      if (!table.has(chain)) throw new Error(`no chain ${chain}`);
      // iptables-nft checks a jump's target as it goes: it must be declared first.
      const target = / -[jg] (vif-guard-\S+)/.exec(` ${body}`)?.[1];
      if (target !== undefined && !table.has(target)) throw new Error(`jump to ${target} before it exists`);
      table.get(chain)?.push(body);
    } else if (verb === '-I') {
      const [, ...ruleTokens] = rest;
      if (!table.has(chain)) throw new Error(`no chain ${chain}`);
      table.get(chain)?.unshift(ruleTokens.join(' '));
    } else if (verb === '-D') {
      const rules = table.get(chain) ?? [];
      if (!rules.includes(body)) throw new Error(`no rule to delete in ${chain}: ${body}`);
      rules.splice(rules.indexOf(body), 1);
    } else if (verb === '-F') {
      if (!table.has(chain)) throw new Error(`no chain ${chain}`);
      table.set(chain, []);
    } else if (verb === '-X') {
      if (table.get(chain)?.length !== 0) throw new Error(`cannot delete ${chain}`);
      if ([...table.values()].some((rules) => rules.some((rule) => rule.endsWith(`-j ${chain}`)))) throw new Error(`${chain} still referenced`);
      table.delete(chain);
    } else if (verb === '-C') {
      if (!table.get(chain)?.includes(body)) throw new Error(`missing rule in ${chain}: ${body}`);
    } else throw new Error(`unexpected line ${line}`);
  }
}

function modelOf(spec: TableSpec): Map<string, string[]> {
  const table = new Map(spec.chains.map((chain) => [chain.name, chain.rules.map(renderRuleBody)]));
  for (const jump of spec.jumps) table.set(jump.chain, [...(table.get(jump.chain) ?? []), renderRuleBody(jump.rule)]);
  return table;
}

/** The model as iptables-save prints it, with foreign built-in chains. */
function saveOf(table: Map<string, string[]>): string {
  const names = [...new Set(['INPUT', 'FORWARD', 'OUTPUT', ...table.keys()])];
  const declare = names.map((name) => (name.startsWith('vif-guard') ? `:${name} - [0:0]` : `:${name} ACCEPT [0:0]`));
  const rules = [...table].flatMap(([name, bodies]) => bodies.map((body) => `-A ${name} ${body}`));
  return `*filter\n${[...declare, ...rules].join('\n')}\nCOMMIT\n`;
}

/** Port chains for these names, and names as Xen and hand-made configs give them. */
const ports = (names: readonly string[]) =>
  names.map((ifname) => ({ ifname, in: { name: `vif-guard-i-${ifname}`, rules: [['-j', 'DROP']] }, out: { name: `vif-guard-o-${ifname}`, rules: [['-j', ifname.length % 2 ? 'DROP' : 'RETURN']] } }));
const name = fc.stringMatching(/^(vif[1-9][0-9]{0,2}\.[0-3]|vm[a-c0-9]{1,3})$/);

describe('planTable on a model of the table', () => {

  it('turns any set of ports into any other: every jump target declared before the jump, stale chains gone', () => {
    fc.assert(
      fc.property(fc.uniqueArray(name, { maxLength: 40 }), fc.uniqueArray(name, { maxLength: 40 }), (before, after) => {
        const live = modelOf(buildFilterTable(4, ports(before)));
        const desiredTable = buildFilterTable(4, ports(after));
        const plan = planTable(parseSave(saveOf(before.length === 0 ? new Map() : live), 'filter'), desiredTable);
        const model = before.length === 0 ? new Map([['INPUT', []], ['FORWARD', []], ['OUTPUT', []]]) : live;
        for (const builtin of ['INPUT', 'FORWARD', 'OUTPUT']) if (!model.has(builtin)) model.set(builtin, []);
        restoreOnModel(model, plan.lines);
        const want = modelOf(desiredTable);
        for (const builtin of ['INPUT', 'FORWARD', 'OUTPUT']) if (!want.has(builtin)) want.set(builtin, []);
        expect(Object.fromEntries([...model].sort())).toEqual(Object.fromEntries([...want].sort()));
      }),
      { numRuns: 300 },
    );
  });

  it('declares each chain just before its rules, in descending name order but after the chains it jumps to', () => {
    const plan = planTable(parseSave(saveOf(new Map()), 'filter'), buildFilterTable(4, ports(['vif1.0', 'vif2.0'])));
    const declared = plan.lines.filter((line) => line.startsWith(':')).map((line) => line.slice(1).split(' ')[0]);
    expect(declared.indexOf('vif-guard-o-vif2.0')).toBeLessThan(declared.indexOf('vif-guard-o-vif1.0'));
    expect(declared.at(-1)).toBe('vif-guard-fwd');
    plan.lines.forEach((line, i) => {
      if (line.startsWith('-A ')) expect([`:${line.split(' ')[1]} - [0:0]`, plan.lines[i - 1]?.startsWith(`-A ${line.split(' ')[1]} `) ? plan.lines[i - 1] : '']).toContain(plan.lines[i - 1]);
    });
  });
});

describe('planPortEvent', () => {

  it('turns the table for any set of ports into the table for the set after one event, from the names alone', () => {
    fc.assert(
      fc.property(fc.uniqueArray(name, { maxLength: 40 }), name, fc.boolean(), (names, target, up) => {
        const before = [...names];
        const after = [...before.filter((n) => n !== target), ...(up ? [target] : [])];
        const live = modelOf(buildFilterTable(4, ports(before)));
        const chains = ports([target])[0];
        const plan = planPortEvent({ family: 4, before, after, jumps: FILTER_JUMPS.filter((jump) => jump.chain === 'FORWARD'), up: up && chains ? { ifname: target, chains: [chains.in, chains.out] } : undefined });
        restoreOnModel(live, [...plan.checks, ...plan.lines]);
        const want = modelOf(buildFilterTable(4, ports(after)));
        // The model keeps every jump of the desired table; INPUT's is not asked for here.
        want.delete('INPUT');
        live.delete('INPUT');
        expect(Object.fromEntries([...live].sort())).toEqual(Object.fromEntries([...want].sort()));
      }),
      { numRuns: 500 },
    );
  });

  it('an unchanged port sends nothing but checks; a missing jump or root rule fails the check', () => {
    const names = ['vif1.0', 'vif2.0', 'vif12.0'];
    const plan = planPortEvent({ family: 4, before: names, after: names, jumps: FILTER_JUMPS });
    expect(plan.lines).toEqual([]);
    expect(plan.checks).toContain('-C FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd');
    expect(plan.checks).toContain('-C vif-guard-in -m physdev --physdev-in vif+ -j vif-guard-di-vif');
    const flushed = modelOf(buildFilterTable(4, ports(names)));
    flushed.set('vif-guard-fwd', []);
    expect(() => restoreOnModel(flushed, plan.checks)).toThrow(/missing rule in vif-guard-fwd/);
  });

  it('a port that is not there makes the commit fail (its chains cannot be flushed)', () => {
    const live = modelOf(buildFilterTable(4, ports(['vif1.0'])));
    const plan = planPortEvent({ family: 4, before: ['vif1.0', 'vif7.0'], after: ['vif1.0'], jumps: [] });
    expect(() => restoreOnModel(live, [...plan.checks, ...plan.lines])).toThrow(/no chain vif-guard-/);
  });
});
