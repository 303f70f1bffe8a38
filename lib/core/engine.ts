import type { Settings } from '../config/settings.js';
import type { GuestPort } from '../guest/model.js';
import { parseAddress, type GuestAddress } from '../guest/validate.js';
import type { Runner } from '../runner.js';
import { VifGuardError } from '../errors.js';
import { withLock } from '../lock.js';
import { createIptablesBackend, detectBackend, type Detection, type IptablesBackend } from '../backend/iptables.js';
import { parseSave, type LiveTable } from '../backend/save-parse.js';
import { planTable, renderRestorePayload, type TablePlan } from '../backend/diff.js';
import { applyBridge, planBridge, readBridge } from '../backend/nft-bridge.js';
import { buildBridge, buildFilterTable, buildRuleset, type PortChains } from '../rules/build.js';
import { buildPortIn6Chain, buildPortInChain, buildPortOut6Chain, buildPortOutChain, isGuarded, portMetaOfRules } from '../rules/port.js';
import { portOfChain, portOutChain } from '../rules/names.js';
import type { Rule, Ruleset } from '../rules/types.js';
import { ipv4Addresses } from '../guest/model.js';

export interface EngineContext {
  readonly runner: Runner;
  readonly settings: Settings;
  readonly lockPath: string;
  readonly log: (line: string) => void;
}

export interface ApplyReport {
  readonly variant: string;
  /** One plan per family: IPv4, then IPv6. */
  readonly plans: readonly TablePlan[];
  /** nft script sent (or that would be) for the bridge table; empty when unchanged. */
  readonly bridgeScript: string;
  readonly warnings: readonly string[];
  readonly dryRun: boolean;
}

/** What one event does to the set of guarded ports; everything else is derived from the live ruleset. */
export type PortChange =
  | { readonly kind: 'up'; readonly port: GuestPort }
  /** `key` also removes a port recorded under another name (renamed, or its vifname node gone). */
  | { readonly kind: 'down'; readonly ifname: string; readonly key?: string | undefined };

export interface LivePort {
  readonly ifname: string;
  readonly v4: PortChains;
  readonly v6: PortChains | undefined;
  readonly mac: string | undefined;
  readonly ipv4: readonly GuestAddress[];
  readonly key: string | undefined;
}

const SOURCE = /^-s (\S+) -j RETURN$/;
const verbatim = (rules: readonly string[]): Rule[] => rules.map((rule) => [rule]);

/** The per-port chains already installed, kept verbatim; MAC and IPv4 addresses read back for the bridge table. */
export function livePorts(filter4: LiveTable, filter6: LiveTable): LivePort[] {
  const ports: LivePort[] = [];
  for (const [chain, entry] of filter4.chains) {
    const ifname = portOfChain(chain);
    if (ifname === undefined) continue;
    const meta = portMetaOfRules(entry.rules);
    const ipv4 = entry.rules.flatMap((rule) => {
      const cidr = SOURCE.exec(rule)?.[1];
      return cidr ? [parseAddress(cidr, { source: `live chain ${chain}` })] : [];
    });
    const in6 = filter6.chains.get(chain);
    const out6 = filter6.chains.get(portOutChain(ifname));
    ports.push({
      ifname,
      v4: { ifname, in: { name: chain, rules: verbatim(entry.rules) }, out: { name: portOutChain(ifname), rules: verbatim(filter4.chains.get(portOutChain(ifname))?.rules ?? []) } },
      v6: in6 ? { ifname, in: { name: chain, rules: verbatim(in6.rules) }, out: { name: portOutChain(ifname), rules: verbatim(out6?.rules ?? []) } } : undefined,
      mac: meta?.mac,
      ipv4,
      key: meta?.key,
    });
  }
  return ports;
}

/** The desired state after one event: the live ports, with this one added, replaced or removed. */
export function desiredAfterChange(filter4: LiveTable, filter6: LiveTable, change: PortChange, settings: Settings): Ruleset {
  const target = change.kind === 'up' ? change.port.ifname : change.ifname;
  const key = change.kind === 'up' ? change.port.key : change.key;
  // The same port under another name (renamed since) is replaced or removed too.
  const ports = livePorts(filter4, filter6).filter((port) => port.ifname !== target && (key === undefined || port.key !== key));
  if (change.kind === 'up' && isGuarded(change.port, settings)) {
    const port = change.port;
    ports.push({
      ifname: target,
      v4: { ifname: target, in: buildPortInChain(port, settings), out: buildPortOutChain(port, settings) },
      v6: { ifname: target, in: buildPortIn6Chain(port, settings), out: buildPortOut6Chain(port, settings) },
      mac: port.mac,
      ipv4: ipv4Addresses(port),
      key: port.key,
    });
  }
  return {
    tables: [buildFilterTable(4, ports.map((port) => port.v4)), buildFilterTable(6, ports.flatMap((port) => (port.v6 ? [port.v6] : [])))],
    bridge: buildBridge(ports, settings),
  };
}

interface LiveState {
  readonly detection: Detection;
  readonly backends: Record<4 | 6, IptablesBackend>;
  readonly tables: Record<4 | 6, LiveTable>;
  readonly variant: string;
  readonly warnings: string[];
}

/** Read both families from the chosen iptables variant. */
export async function readLive(ctx: EngineContext, counters = false): Promise<LiveState> {
  // Detection already read every IPv4 table (with counters when asked): no second iptables-save.
  const detection = await detectBackend(ctx.runner, ctx.settings.backend, ctx.settings.lockTimeout, counters);
  const v6 = createIptablesBackend(ctx.runner, detection.backend.variant, ctx.settings.lockTimeout, 6);
  const save6 = await v6.save('filter', counters);
  return {
    detection,
    backends: { 4: detection.backend, 6: v6 },
    tables: { 4: parseSave(detection.save, 'filter'), 6: parseSave(save6, 'filter') },
    variant: detection.backend.variant,
    warnings: [...detection.warnings],
  };
}

/** Hooks must finish inside libxl's 40 s; sync and uninstall may rewrite thousands of chains and get longer. */
const BULK_SECONDS = 300;

async function underLock(ctx: EngineContext, dryRun: boolean, desiredFor: (filter4: LiveTable, filter6: LiveTable) => Ruleset, bulk = false): Promise<ApplyReport> {
  return withLock(ctx.runner, ctx.lockPath, ctx.settings.lockTimeout, async () => {
    const live = await readLive(ctx);
    const desired = desiredFor(live.tables[4], live.tables[6]);
    if (desired.bridge && !ctx.runner.which('nft')) {
      throw new VifGuardError('MISSING_TOOL', 'nft is not installed: MAC, ARP and ethertype checks need it (apt-get install nftables; on a kernel without nf_tables, layer2 = no in vif-guard.conf)');
    }
    const liveBridge = ctx.runner.which('nft') ? await readBridge(ctx.runner) : undefined;
    const plans = desired.tables.map((table) => planTable(live.tables[table.family], table));
    const bridgeScript = liveBridge ? planBridge(liveBridge, desired.bridge) : '';
    // Order: IPv4, IPv6, then layer 2; each is one atomic transaction.
    for (const plan of plans) {
      const payload = renderRestorePayload(plan);
      if (payload === '') continue;
      if (dryRun) ctx.log(`${plan.family === 6 ? 'ip6tables' : 'iptables'}-restore:\n${payload.trimEnd()}`);
      else await live.backends[plan.family].restore(payload, bulk ? BULK_SECONDS : undefined);
    }
    if (bridgeScript !== '') {
      if (dryRun) ctx.log(`nft -f:\n${bridgeScript.trimEnd()}`);
      else await applyBridge(ctx.runner, bridgeScript, bulk ? BULK_SECONDS : ctx.settings.lockTimeout + 10);
    }
    for (const warning of live.warnings) ctx.log(`warning: ${warning}`);
    return { variant: live.variant, plans, bridgeScript, warnings: live.warnings, dryRun };
  });
}

/** Apply one port event (hook path): lock, read live, diff, one restore per family and one nft transaction. */
export function applyPortChange(ctx: EngineContext, change: PortChange, dryRun = false): Promise<ApplyReport> {
  return underLock(ctx, dryRun, (filter4, filter6) => desiredAfterChange(filter4, filter6, change, ctx.settings));
}

/** Make vif-guard's state exactly what these ports need (sync path). */
export function applyFullState(ctx: EngineContext, ports: readonly GuestPort[], dryRun = false): Promise<ApplyReport> {
  const ruleset = buildRuleset(ports, ctx.settings);
  return underLock(ctx, dryRun, () => ruleset, true);
}

/** Remove every vif-guard chain, jump and table (uninstall). */
export function removeEverything(ctx: EngineContext, dryRun = false): Promise<ApplyReport> {
  return underLock(ctx, dryRun, () => ({
    tables: [
      { table: 'filter', family: 4, chains: [], jumps: [] },
      { table: 'filter', family: 6, chains: [], jumps: [] },
    ],
    bridge: undefined,
  }), true);
}
