import type { TableSpec } from '../rules/types.js';
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
    const bodies = chain.rules.map(renderRuleBody);
    const current = live.chains.get(chain.name);
    if (!current) {
      lines.push(`:${chain.name} - [0:0]`);
      added.push(chain.name);
    } else if (current.rules.length === bodies.length && current.rules.every((rule, i) => rule === bodies[i])) {
      continue;
    } else {
      rewrites.push(`-F ${chain.name}`);
      changed.push(chain.name);
    }
    for (const body of bodies) rewrites.push(`-A ${chain.name} ${body}`);
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
