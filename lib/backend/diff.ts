import type { ChainSpec, TableSpec } from '../rules/types.js';
import { isOwnedChain } from '../rules/types.js';
import { dispatchChainOf, dispatchTree, type DispatchEntry } from '../rules/dispatch.js';
import { dispatchChain, portInChain, portOutChain } from '../rules/names.js';
import { FORWARD_CHAIN_SPEC } from '../rules/build.js';
import type { LiveTable } from './save-parse.js';
import { renderRuleBody } from './render.js';

export interface TablePlan {
  readonly table: string;
  readonly family: 4 | 6;
  /** iptables-restore --noflush payload lines, without `*table` and `COMMIT`; empty when nothing changes. */
  readonly lines: readonly string[];
  readonly added: readonly string[];
  readonly changed: readonly string[];
  readonly removed: readonly string[];
}

function isOwnedJump(body: string): boolean {
  return / -[jg] vif-guard/.test(` ${body}`);
}

/** Whether a live chain holds exactly these rules, in order (as iptables-save prints them). */
export function chainMatches(live: LiveTable, chain: ChainSpec): boolean {
  const have = live.chains.get(chain.name)?.rules;
  return have !== undefined && have.length === chain.rules.length && chain.rules.every((rule, i) => renderRuleBody(rule) === have[i]);
}

/** Whether the desired jumps are the first rules of their built-in chains, in order, and the only vif-guard jumps there. */
export function jumpsInPlace(live: LiveTable, jumps: TableSpec['jumps'], builtin: string): boolean {
  const want = jumps.filter((jump) => jump.chain === builtin).map((jump) => renderRuleBody(jump.rule));
  const have = live.chains.get(builtin)?.rules ?? [];
  return want.every((body, i) => have[i] === body) && have.filter(isOwnedJump).length === want.length;
}

/**
 * The restore payload that turns the live table into the desired one, touching only vif-guard's chains
 * and its jump rules. Unchanged chains are not sent, so their counters survive; foreign rules are never named.
 */
export function planTable(live: LiveTable, desired: TableSpec): TablePlan {
  const lines: string[] = [];
  const added: string[] = [];
  const changed: string[] = [];
  const removed: string[] = [];
  const desiredNames = new Set(desired.chains.map((chain) => chain.name));

  const rewrites: string[] = [];
  for (const chain of desired.chains) {
    if (!live.chains.has(chain.name)) added.push(chain.name);
    else if (!chainMatches(live, chain)) changed.push(chain.name);
  }
  const send = new Set([...added, ...changed]);
  for (const chain of sendOrder(desired.chains.filter((c) => send.has(c.name)))) {
    rewrites.push(live.chains.has(chain.name) ? `-F ${chain.name}` : `:${chain.name} - [0:0]`);
    for (const rule of chain.rules) rewrites.push(`-A ${chain.name} ${renderRuleBody(rule)}`);
  }

  // Jumps must be the first rules of their built-in chain, in order, and appear nowhere else in it.
  const jumpDeletes: string[] = [];
  const jumpInserts: string[] = [];
  const builtins = new Set([...desired.jumps.map((jump) => jump.chain)]);
  for (const [name, chain] of live.chains) if (!isOwnedChain(name) && chain.rules.some(isOwnedJump)) builtins.add(name);
  for (const builtin of builtins) {
    if (jumpsInPlace(live, desired.jumps, builtin)) continue;
    const want = desired.jumps.filter((jump) => jump.chain === builtin).map((jump) => renderRuleBody(jump.rule));
    const have = live.chains.get(builtin)?.rules ?? [];
    for (const body of have.filter(isOwnedJump)) jumpDeletes.push(`-D ${builtin} ${body}`);
    want.forEach((body, i) => jumpInserts.push(`-I ${builtin} ${i + 1} ${body}`));
  }

  const removals: string[] = [];
  for (const name of live.chains.keys()) {
    if (!isOwnedChain(name) || desiredNames.has(name)) continue;
    removals.push(`-F ${name}`);
    removed.push(name);
  }
  for (const name of removed) removals.push(`-X ${name}`);

  lines.push(...jumpDeletes, ...rewrites, ...jumpInserts, ...removals);
  return { table: live.table, family: desired.family, lines, added, changed, removed };
}

const byNameDescending = (a: ChainSpec, b: ChainSpec): number => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);

/** The chain a rule jumps or goes to, if any. */
function jumpTarget(rule: readonly string[]): string | undefined {
  const at = rule.findIndex((token) => token === '-j' || token === '-g');
  return at < 0 ? undefined : rule[at + 1];
}

/**
 * The order chains are declared and filled in: each after the chains it jumps to (iptables-nft
 * checks a jump's target as it goes), otherwise by name, descending. iptables-nft-restore files every
 * command's chain and jump target in a linked list kept in name order (nft-cache.c,
 * cache_chain_list_insert), walked from the head each time: with every chain declared first, each
 * rule walked to its chain's place among all 8,800 of 4,000 guests, and a sync from nothing spent
 * 3.2 s in IPv4's restore. Declared in descending order, just before its rules, a chain is at the head.
 */
function sendOrder(chains: readonly ChainSpec[]): ChainSpec[] {
  const byName = new Map(chains.map((chain) => [chain.name, chain]));
  const done = new Set<string>();
  const order: ChainSpec[] = [];
  const visit = (chain: ChainSpec): void => {
    if (done.has(chain.name)) return;
    done.add(chain.name);
    const targets = chain.rules.map(jumpTarget).flatMap((name) => (name === undefined ? [] : (byName.get(name) ?? [])));
    for (const target of targets.sort(byNameDescending)) visit(target);
    order.push(chain);
  };
  for (const chain of [...chains].sort(byNameDescending)) visit(chain);
  return order;
}

export function renderRestorePayload(plan: TablePlan): string {
  return plan.lines.length === 0 ? '' : `*${plan.table}\n${plan.lines.join('\n')}\nCOMMIT\n`;
}

export interface PortEvent {
  readonly family: 4 | 6;
  /** Every guarded port before the event and after it (the dispatch chains are derived from the names). */
  readonly before: readonly string[];
  readonly after: readonly string[];
  /** The port the event (re)writes, with its chains: `:chain` creates or flushes them. Absent when they are already as wanted. */
  readonly up?: { readonly ifname: string; readonly chains: readonly ChainSpec[] } | undefined;
  /** The jumps from the built-in chains, which must already be there. */
  readonly jumps: TableSpec['jumps'];
  /** Those of them that something was inserted above: deleted and inserted again as the first rule. */
  readonly retop?: TableSpec['jumps'];
}

export interface PortEventPlan extends TablePlan {
  /** `-C` lines sent before the changes: each fails the whole commit if its rule is missing. */
  readonly checks: readonly string[];
}

/**
 * The restore payload for one port event, computed from port names alone, without reading the table:
 * only the dispatch chains on the changed names' paths move, so the payload does not grow with the
 * number of guests. It proves the table is what the names say as it goes: a leaving port's chains
 * are flushed and deleted (which fails if they are not there), and `-C` checks the jumps from the
 * built-in chains, vif-guard-fwd and the roots. Any failure aborts the whole commit, and the caller
 * then reads the table (a firewall restart, a hand edit).
 */
export function planPortEvent(event: PortEvent): PortEventPlan {
  const check = (chain: ChainSpec) => chain.rules.map((rule) => `-C ${chain.name} ${renderRuleBody(rule)}`);
  const retop = event.retop ?? [];
  const checks = event.jumps.filter((jump) => !retop.includes(jump)).map((jump) => `-C ${jump.chain} ${renderRuleBody(jump.rule)}`);
  checks.push(...check(FORWARD_CHAIN_SPEC));
  const lines: string[] = [];
  const added: string[] = [];
  const changed: string[] = [];
  const removed: string[] = [];
  const fills: string[] = [];
  for (const chain of event.up?.chains ?? []) {
    lines.push(`:${chain.name} - [0:0]`);
    (event.before.includes(event.up?.ifname ?? '') ? changed : added).push(chain.name);
    for (const rule of chain.rules) fills.push(`-A ${chain.name} ${renderRuleBody(rule)}`);
  }
  const [was, will] = [dispatchTree(event.before), dispatchTree(event.after)];
  const keyOf = (entry: DispatchEntry) => ('port' in entry ? `p${entry.port}` : `b${entry.branch}`);
  const same = (a: readonly DispatchEntry[], b: readonly DispatchEntry[]) => a.length === b.length && a.every((entry, i) => keyOf(entry) === keyOf(b[i] as DispatchEntry));
  for (const direction of ['in', 'out'] as const) {
    for (const [prefix, entries] of will) {
      const previous = was.get(prefix);
      if (prefix !== '' && previous !== undefined && same(previous, entries)) continue;
      const chain = dispatchChainOf(direction, prefix, entries);
      if (previous === undefined) {
        lines.push(`:${chain.name} - [0:0]`);
        added.push(chain.name);
      } else if (same(previous, entries)) {
        if (prefix === '') checks.push(...check(chain));
        continue;
      } else {
        fills.push(`-F ${chain.name}`);
        changed.push(chain.name);
      }
      fills.push(...chain.rules.map((rule) => `-A ${chain.name} ${renderRuleBody(rule)}`));
    }
  }
  const after = new Set(event.after);
  const gone = [
    ...[...was.keys()].filter((prefix) => !will.has(prefix)).flatMap((prefix) => [dispatchChain('in', prefix), dispatchChain('out', prefix)]),
    ...event.before.filter((ifname) => !after.has(ifname)).flatMap((ifname) => [portInChain(ifname), portOutChain(ifname)]),
  ];
  removed.push(...gone);
  lines.push(...fills, ...gone.map((name) => `-F ${name}`), ...gone.map((name) => `-X ${name}`));
  // -D also proves the jump is there: without it the commit fails like a failed check.
  lines.push(...retop.flatMap((jump) => [`-D ${jump.chain} ${renderRuleBody(jump.rule)}`, `-I ${jump.chain} 1 ${renderRuleBody(jump.rule)}`]));
  return { table: 'filter', family: event.family, checks, lines, added, changed, removed };
}
