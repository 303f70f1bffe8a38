import type { Settings } from '../config/settings.js';
import type { GuestPort } from '../guest/model.js';
import type { Runner } from '../runner.js';
import { withLock } from '../lock.js';
import { detectBackend, type IptablesBackend } from '../backend/iptables.js';
import { parseSave, type LiveTable } from '../backend/save-parse.js';
import { planTable, renderRestorePayload, type TablePlan } from '../backend/diff.js';
import { buildFilterTable, buildRawTable, buildRuleset } from '../rules/build.js';
import { buildPortInChain, buildPortOutChain, isGuarded, parsePortComment } from '../rules/port.js';
import { portOfChain, portOutChain } from '../rules/names.js';
import type { ChainSpec, Rule, TableSpec } from '../rules/types.js';

export interface EngineContext {
  readonly runner: Runner;
  readonly settings: Settings;
  readonly lockPath: string;
  readonly log: (line: string) => void;
}

export interface ApplyReport {
  readonly variant: string;
  readonly plans: readonly TablePlan[];
  readonly warnings: readonly string[];
  readonly dryRun: boolean;
}

/** What one event does to the set of guarded ports; everything else is derived from the live ruleset. */
export type PortChange = { readonly kind: 'up'; readonly port: GuestPort } | { readonly kind: 'down'; readonly ifname: string };

interface LivePort {
  readonly ifname: string;
  readonly in: ChainSpec;
  readonly out: ChainSpec;
  readonly bridge: string | undefined;
}

const COMMENT = /--comment "((?:[^"\\]|\\.)*)"/;

/** The per-port chains already installed, kept verbatim, with the bridge recorded in their comment. */
export function livePorts(filter: LiveTable): LivePort[] {
  const ports: LivePort[] = [];
  for (const [chain, entry] of filter.chains) {
    const ifname = portOfChain(chain);
    if (ifname === undefined) continue;
    const outEntry = filter.chains.get(portOutChain(ifname));
    const comment = entry.rules.map((rule) => COMMENT.exec(rule)?.[1]).find((text) => text !== undefined);
    const meta = comment === undefined ? undefined : parsePortComment(comment.replace(/\\(.)/g, '$1'));
    const verbatim = (rules: readonly string[]): Rule[] => rules.map((rule) => [rule]);
    ports.push({
      ifname,
      in: { name: chain, rules: verbatim(entry.rules) },
      out: { name: portOutChain(ifname), rules: verbatim(outEntry?.rules ?? []) },
      bridge: meta?.bridge,
    });
  }
  return ports;
}

/** The desired tables after one event: the live ports, with this one added, replaced or removed. */
export function desiredAfterChange(filter: LiveTable, change: PortChange, settings: Settings): TableSpec[] {
  const target = change.kind === 'up' ? change.port.ifname : change.ifname;
  const ports = livePorts(filter).filter((port) => port.ifname !== target);
  if (change.kind === 'up' && isGuarded(change.port, settings)) {
    ports.push({
      ifname: target,
      in: buildPortInChain(change.port, settings),
      out: buildPortOutChain(change.port, settings),
      bridge: change.port.bridge,
    });
  }
  return [buildFilterTable(ports), buildRawTable(ports.map((port) => port.bridge), settings)];
}

async function applyTables(
  ctx: EngineContext,
  backend: IptablesBackend,
  save: string,
  desiredFor: (filter: LiveTable) => TableSpec[],
  dryRun: boolean,
): Promise<TablePlan[]> {
  const desired = desiredFor(parseSave(save, 'filter'));
  const plans = desired.map((table) => planTable(parseSave(save, table.table), table));
  // Filter first, so protection exists before anything else; each *table block commits atomically.
  const payload = plans.map(renderRestorePayload).join('');
  if (payload === '') return plans;
  if (dryRun) ctx.log(payload.trimEnd());
  else await backend.restore(payload);
  return plans;
}

async function underLock(ctx: EngineContext, dryRun: boolean, desiredFor: (filter: LiveTable) => TableSpec[]): Promise<ApplyReport> {
  return withLock(ctx.runner, ctx.lockPath, ctx.settings.lockTimeout, async () => {
    const detection = await detectBackend(ctx.runner, ctx.settings.backend, ctx.settings.lockTimeout);
    for (const warning of detection.warnings) ctx.log(`warning: ${warning}`);
    const plans = await applyTables(ctx, detection.backend, detection.save, desiredFor, dryRun);
    return { variant: detection.backend.variant, plans, warnings: detection.warnings, dryRun };
  });
}

/** Apply one port event (hook path): lock, read live, diff, one restore per changed table. */
export function applyPortChange(ctx: EngineContext, change: PortChange, dryRun = false): Promise<ApplyReport> {
  return underLock(ctx, dryRun, (filter) => desiredAfterChange(filter, change, ctx.settings));
}

/** Make vif-guard's state exactly what these ports need (sync path). */
export function applyFullState(ctx: EngineContext, ports: readonly GuestPort[], dryRun = false): Promise<ApplyReport> {
  const ruleset = buildRuleset(ports, ctx.settings);
  return underLock(ctx, dryRun, () => [...ruleset.tables]);
}

/** Remove every vif-guard chain and jump (uninstall). */
export function removeEverything(ctx: EngineContext, dryRun = false): Promise<ApplyReport> {
  const empty: TableSpec[] = [
    { table: 'filter', chains: [], jumps: [] },
    { table: 'raw', chains: [], jumps: [] },
  ];
  return underLock(ctx, dryRun, () => empty);
}

