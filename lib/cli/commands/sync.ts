import { applyFullState, type ApplyReport } from '../../core/engine.js';
import { gatherInventory, type GatheredInventory, type Inventory } from '../../core/inventory.js';
import { syncMemo } from '../../core/sync-memo.js';
import { advertisementWarnings, isGuarded } from '../../rules/port.js';
import { portOfChain } from '../../rules/names.js';
import { createContext, log, printJson } from '../context.js';
import { someOf } from '../../names.js';

const ALL = '--json lists them all';

export interface SyncSummary {
  readonly dryRun: boolean;
  readonly variant: string;
  /** nftables, iptables-nft or iptables-legacy. */
  readonly backend: string;
  readonly protectedPorts: number;
  readonly unaddressedPorts: string[];
  readonly added: string[];
  readonly updated: string[];
  readonly released: string[];
  readonly sharedChainsChanged: boolean;
  readonly restoreLines: number;
  readonly bridgeChanged: boolean;
  readonly warnings: string[];
  /**
   * The configs, the saved lists, vif-guard's caches and the kernel's sets were byte for byte what the
   * last sync that found nothing to do saw: nothing was parsed or compared again (the memo in /run).
   */
  readonly unchanged: boolean;
  /** sync --rebuild replaced the bridge table whole (or would, with --dry-run). */
  readonly rebuilt: boolean;
}

/** What a sync with nothing to do reports, kept in its memo and reported again on a hit. */
interface Kept {
  readonly guarded: number;
  readonly unaddressed: string[];
  readonly warnings: string[];
}

function isKept(value: unknown): value is Kept {
  const kept = value as Partial<Kept> | null;
  return typeof kept?.guarded === 'number' && Array.isArray(kept.unaddressed) && Array.isArray(kept.warnings);
}

/** The ports behind a list of chains: each port has one vif-guard-i- chain (its -o- twin moves with it). */
function portsOf(chains: readonly string[]): string[] {
  const inOrOut = chains.map((chain) => portOfChain(chain) ?? /^vif-guard-o-(.+)$/.exec(chain)?.[1]);
  return [...new Set(inOrOut.filter((name): name is string => name !== undefined))].sort();
}

export function summarise(report: ApplyReport, guarded: number, unaddressed: string[], warnings: string[], rebuild = false): SyncSummary {
  const all = (pick: (plan: ApplyReport['plans'][number]) => readonly string[]) => report.plans.flatMap(pick);
  const fromPlans = portsOf(all((plan) => plan.added));
  const added = report.ports?.added ?? fromPlans;
  const released = report.ports?.released ?? portsOf(all((plan) => plan.removed));
  const addedSet = new Set(added);
  const updated = report.ports?.updated ?? portsOf(all((plan) => plan.changed)).filter((port) => !addedSet.has(port));
  const sharedChanged = report.engine === 'iptables' && [...all((plan) => plan.added), ...all((plan) => plan.changed), ...all((plan) => plan.removed)].some(
    (chain) => portOfChain(chain) === undefined && !chain.startsWith('vif-guard-o-'),
  );
  return {
    dryRun: report.dryRun,
    variant: report.variant,
    backend: report.backend,
    protectedPorts: guarded,
    unaddressedPorts: unaddressed,
    added,
    updated,
    released,
    sharedChainsChanged: sharedChanged || all((plan) => plan.lines).some((line) => /^-[ID] (FORWARD|INPUT) /.test(line)),
    restoreLines: all((plan) => plan.lines).length,
    bridgeChanged: report.bridgeScript !== '',
    warnings: [...warnings, ...report.warnings],
    unchanged: report.memo !== undefined,
    rebuilt: rebuild && report.bridgeScript !== '',
  };
}

/** vif-guard sync: make the live rules exactly what the running guests need, touching nothing else. */
export async function runSync(options: { dryRun: boolean; json: boolean; rebuild?: boolean }): Promise<number> {
  // node's spawn, as the hooks and block: loading execa cost a sync with nothing to do ~50 ms of its ~550.
  const ctx = createContext({ light: true });
  const quiet = { ...ctx, log: options.json ? () => undefined : ctx.log };
  // The guests are read under sync's lock (see applyFullState): a hook cannot slip in between. Every
  // file is read first; it is parsed only when the memo does not say the result is already in place.
  let gathered: GatheredInventory | undefined;
  const gather = async () => {
    if (!gathered && !options.json) log('reading running guests and their configs');
    return (gathered ??= await gatherInventory(ctx.runner, ctx.settings));
  };
  let inventory: Inventory | undefined;
  let guarded = 0;
  const silencedFor = (engine: ApplyReport['engine']) => advertisementWarnings(engine, inventory?.ports ?? [], ctx.settings);
  const unaddressedOf = (read: Inventory | undefined) => (read?.ports ?? []).filter((port) => !isGuarded(port, ctx.settings)).map((port) => port.ifname);
  const report = await applyFullState(
    quiet,
    async () => {
      inventory = (await gather()).parse();
      guarded = inventory.ports.filter((port) => isGuarded(port, ctx.settings)).length;
      for (const warning of inventory.warnings) if (!options.json) log(`warning: ${warning}`);
      if (!options.json) log(`${options.dryRun ? 'planning' : 'applying'} protection for ${guarded} vif(s)`);
      return inventory.ports;
    },
    options.dryRun,
    syncMemo(
      ctx,
      async () => (await gather()).digest,
      (): Kept => ({ guarded, unaddressed: unaddressedOf(inventory), warnings: [...(inventory?.warnings ?? []), ...silencedFor('nftables')] }),
    ),
    options.rebuild === true,
  );
  const kept = isKept(report.memo) ? report.memo : undefined;
  if (kept) {
    guarded = kept.guarded;
    if (!options.json) for (const warning of kept.warnings) log(`warning: ${warning}`);
  }
  const unaddressed = kept?.unaddressed ?? unaddressedOf(inventory);
  const silenced = kept ? [] : silencedFor(report.engine);
  if (!options.json) for (const warning of silenced) log(`warning: ${warning}`);
  const summary = summarise(report, guarded, unaddressed, kept?.warnings ?? [...(inventory?.warnings ?? []), ...silenced], options.rebuild === true);
  if (options.json) {
    printJson(summary);
    return 0;
  }
  const verb = options.dryRun ? 'would ' : '';
  const parts: string[] = [];
  if (summary.added.length) parts.push(`${verb}protect ${someOf(summary.added, ALL)}`);
  if (summary.updated.length) parts.push(`${verb}update ${someOf(summary.updated, ALL)}`);
  if (summary.released.length) parts.push(`${verb}release ${someOf(summary.released, ALL)}`);
  if (summary.sharedChainsChanged) parts.push(`${verb}repair the dispatch chains and jumps`);
  if (summary.rebuilt) parts.push(`${verb}rebuild the bridge table vif_guard whole`);
  else if (summary.bridgeChanged && report.engine === 'iptables') parts.push(`${verb}update the bridge table (MAC, ARP, NOTRACK)`);
  if (report.engine === 'nftables' && summary.restoreLines) parts.push(`${verb}remove the iptables backend's chains`);
  if (unaddressed.length) log(`no ip= configured, left unprotected (unaddressed = allow): ${someOf(unaddressed, ALL)}`);
  const same = summary.unchanged ? ' (configs and sets unchanged since the last sync checked them)' : '';
  log(parts.length ? `${parts.join('; ')} (${summary.backend}${report.engine === 'iptables' ? `, ${summary.restoreLines} restore lines` : ''})` : `nothing to do: ${guarded} vif(s) protected as configured${same}`);
  return 0;
}
