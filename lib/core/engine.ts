import type { Settings } from '../config/settings.js';
import type { GuestPort } from '../guest/model.js';
import type { Runner } from '../runner.js';
import { toVifGuardError } from '../errors.js';
import { withLock } from '../lock.js';
import { detectBackend, type IptablesBackend } from '../backend/iptables.js';
import { parseSave, type LiveTable } from '../backend/save-parse.js';
import { planTable, renderRestorePayload, type TablePlan } from '../backend/diff.js';
import { applyNotrack, planNotrack, readNotrack } from '../backend/nft-notrack.js';
import { buildFilterTable, buildNotrack, buildRuleset } from '../rules/build.js';
import { buildPortInChain, buildPortOutChain, isGuarded, parsePortComment } from '../rules/port.js';
import { portOfChain, portOutChain } from '../rules/names.js';
import type { ChainSpec, NotrackSpec, Rule, TableSpec } from '../rules/types.js';

export interface EngineContext {
  readonly runner: Runner;
  readonly settings: Settings;
  readonly lockPath: string;
  readonly log: (line: string) => void;
}

export interface ApplyReport {
  readonly variant: string;
  readonly plans: readonly TablePlan[];
  /** nft script sent (or that would be) for the NOTRACK table; empty when unchanged. */
  readonly notrackScript: string;
  readonly warnings: readonly string[];
  readonly dryRun: boolean;
}

/** What one event does to the set of guarded ports; everything else is derived from the live ruleset. */
export type PortChange = { readonly kind: 'up'; readonly port: GuestPort } | { readonly kind: 'down'; readonly ifname: string };

interface LivePort {
  readonly ifname: string;
  readonly in: ChainSpec;
  readonly out: ChainSpec;
  readonly mac: string | undefined;
}

interface Desired {
  readonly tables: readonly TableSpec[];
  readonly notrack: NotrackSpec | undefined;
}

const COMMENT = /--comment "((?:[^"\\]|\\.)*)"/;

/** The per-port chains already installed, kept verbatim, with the metadata recorded in their comment. */
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
      mac: meta?.mac,
    });
  }
  return ports;
}

/** The desired state after one event: the live ports, with this one added, replaced or removed. */
export function desiredAfterChange(filter: LiveTable, change: PortChange, settings: Settings): Desired {
  const target = change.kind === 'up' ? change.port.ifname : change.ifname;
  const ports = livePorts(filter).filter((port) => port.ifname !== target);
  if (change.kind === 'up' && isGuarded(change.port, settings)) {
    ports.push({
      ifname: target,
      in: buildPortInChain(change.port, settings),
      out: buildPortOutChain(change.port, settings),
      mac: change.port.mac,
    });
  }
  return { tables: [buildFilterTable(ports)], notrack: buildNotrack(ports, settings) };
}

async function applyFilter(ctx: EngineContext, backend: IptablesBackend, desired: Desired, live: LiveTable, dryRun: boolean): Promise<TablePlan[]> {
  const plans = desired.tables.map((table) => planTable(live, table));
  const payload = plans.map(renderRestorePayload).join('');
  if (payload === '') return plans;
  if (dryRun) ctx.log(payload.trimEnd());
  else await backend.restore(payload);
  return plans;
}

/** NOTRACK saves conntrack entries; it is not protection, so a failure here is a warning, not a failed hook. */
async function applyNotrackTable(ctx: EngineContext, desired: NotrackSpec | undefined, dryRun: boolean, warnings: string[]): Promise<string> {
  if (!ctx.runner.which('nft')) {
    if (desired) warnings.push('nft is not installed: guest traffic stays in conntrack (apt-get install nftables, or notrack = no)');
    return '';
  }
  try {
    const script = planNotrack(await readNotrack(ctx.runner), desired);
    if (script !== '' && dryRun) ctx.log(script.trimEnd());
    else await applyNotrack(ctx.runner, script);
    return script;
  } catch (error) {
    warnings.push(`NOTRACK not applied, guest traffic stays in conntrack: ${toVifGuardError(error).shortMessage}`);
    return '';
  }
}

async function underLock(ctx: EngineContext, dryRun: boolean, desiredFor: (filter: LiveTable) => Desired): Promise<ApplyReport> {
  return withLock(ctx.runner, ctx.lockPath, ctx.settings.lockTimeout, async () => {
    const detection = await detectBackend(ctx.runner, ctx.settings.backend, ctx.settings.lockTimeout);
    const warnings = [...detection.warnings];
    const live = parseSave(detection.save, 'filter');
    const desired = desiredFor(live);
    // Protection first: the filter table is one atomic transaction; only then the NOTRACK table.
    const plans = await applyFilter(ctx, detection.backend, desired, live, dryRun);
    const notrackScript = await applyNotrackTable(ctx, desired.notrack, dryRun, warnings);
    for (const warning of warnings) ctx.log(`warning: ${warning}`);
    return { variant: detection.backend.variant, plans, notrackScript, warnings, dryRun };
  });
}

/** Apply one port event (hook path): lock, read live, diff, one restore. */
export function applyPortChange(ctx: EngineContext, change: PortChange, dryRun = false): Promise<ApplyReport> {
  return underLock(ctx, dryRun, (filter) => desiredAfterChange(filter, change, ctx.settings));
}

/** Make vif-guard's state exactly what these ports need (sync path). */
export function applyFullState(ctx: EngineContext, ports: readonly GuestPort[], dryRun = false): Promise<ApplyReport> {
  const ruleset = buildRuleset(ports, ctx.settings);
  return underLock(ctx, dryRun, () => ruleset);
}

/** Remove every vif-guard chain, jump and table (uninstall). */
export function removeEverything(ctx: EngineContext, dryRun = false): Promise<ApplyReport> {
  return underLock(ctx, dryRun, () => ({ tables: [{ table: 'filter', chains: [], jumps: [] }], notrack: undefined }));
}
