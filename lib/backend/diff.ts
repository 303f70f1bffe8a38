import type { ChainSpec, TableSpec } from '../rules/types.js';
import { isOwnedChain } from '../rules/types.js';
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
    if (!live.chains.has(chain.name)) {
      lines.push(`:${chain.name} - [0:0]`);
      added.push(chain.name);
    } else if (chainMatches(live, chain)) {
      continue;
    } else {
      rewrites.push(`-F ${chain.name}`);
      changed.push(chain.name);
    }
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

export function renderRestorePayload(plan: TablePlan): string {
  return plan.lines.length === 0 ? '' : `*${plan.table}\n${plan.lines.join('\n')}\nCOMMIT\n`;
}
