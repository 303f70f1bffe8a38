import { existsSync } from 'node:fs';
import { readIfPresent } from '../files.js';
import { iptablesVariant, type Settings } from '../config/settings.js';
import type { GuestPort } from '../guest/model.js';
import type { Runner } from '../runner.js';
import { toVifGuardError, VifGuardError } from '../errors.js';
import { besideLock, withLock } from '../lock.js';
import { createIptablesBackend, detectBackend, restoreFamilies, type Detection, type IptablesBackend } from '../backend/iptables.js';
import { parseSave, type LiveTable } from '../backend/save-parse.js';
import { planTable, renderRestorePayload, type TablePlan } from '../backend/diff.js';
import { iptablesCacheHeader, iptablesCachePath } from '../backend/iptables-cache.js';
import { dropPortCache, portCachePath, PortRecords, readPortCache, writePortCache } from '../backend/bridge-cache.js';
import { createIpsets, destroyIpsets, listIpsets, referencedIpsets } from '../backend/ipset.js';
import { applyEbtables, readEbtables } from '../backend/ebtables.js';
import { buildEbtables, ebLayoutDigest } from '../rules/ebtables.js';
import { bridgeFromRecords, listBridgeSets, parseBridgeSets, planBridge, portUnchanged, readBridge, type LiveBridge, type LiveBridgePort } from '../backend/nft-bridge.js';
import { blockedPort, buildFilterTable, buildPortChains, buildRuleset, NO_TABLES } from '../rules/build.js';
import { bridgePort, bridgeSkeleton, buildBridgeSpec, parsePortComment } from '../rules/bridge.js';
import { hasBlocklists, portListsDigest, readBlocklists, readBlocklistsOf, type Blocklist } from '../blocklist/store.js';
import { isGuarded } from '../rules/port.js';
import type { BridgeBlock, IpsetSpec, Ruleset, TableSpec } from '../rules/types.js';
import { renderRuleBody } from '../backend/render.js';
import { ipv4Addresses } from '../guest/model.js';
import type { LiveState as StatusLive } from './status.js';
import { chooseEngine, layer2Tool } from './choose.js';
import { livePorts, changed, touchedIn, guestPortOf, guestPortOfLive, blockResolver, BULK_SECONDS, commitMs, applyBridgeScript, type EngineContext, type ApplyReport, type PortChange } from './engine-base.js';
import { iptablesRecords, iptablesBlocklistsFromCache, iptablesFromCache } from './iptables-hook.js';
import type { SyncMemo } from './sync-memo.js';

// The engine's public surface, whichever module holds it.
export { blockResolver, guestPortOf, livePorts, type ApplyReport, type EngineContext, type LivePort, type PortChange } from './engine-base.js';

/** The desired state after one event: the live ports, with this one added, replaced or removed. */
export function desiredAfterChange(filter4: LiveTable, filter6: LiveTable, change: PortChange, settings: Settings, blocks?: (port: GuestPort) => BridgeBlock | undefined): Ruleset {
  const { ifname: target, touches } = changed(change);
  const ports = livePorts(filter4, filter6).filter((port) => !touches(port));
  const guests: GuestPort[] = ports.map((port) => ({ ifname: port.ifname, guest: port.guest, bridge: port.bridge, mac: port.mac, addresses: port.ipv4, key: port.key }));
  let ipsets: IpsetSpec[] = [];
  if (change.kind === 'up' && isGuarded(change.port, settings)) {
    const port = change.port;
    // Its blocklists (ipsets); other ports' chains are kept verbatim, and the sets they match on with them.
    const blocked = blockedPort(port, blocks);
    ipsets = blocked?.specs ?? [];
    const chains = buildPortChains(port, settings, blocked?.sets);
    ports.push({
      ifname: target,
      v4: chains[4],
      v6: chains[6],
      mac: port.mac,
      ipv4: ipv4Addresses(port),
      key: port.key,
      guest: port.guest,
      bridge: port.bridge,
    });
    guests.push(port);
  }
  return {
    tables: [buildFilterTable(4, ports.map((port) => port.v4)), buildFilterTable(6, ports.flatMap((port) => (port.v6 ? [port.v6] : [])))],
    bridge: buildBridgeSpec(guests, settings, false),
    ipsets,
  };
}

/** The nftables backend's ports after one event, from the ports in the live table. */
export function portsAfterChange(base: readonly GuestPort[], change: PortChange, settings: Settings): GuestPort[] {
  const { touches } = changed(change);
  const ports = base.filter((port) => !touches(port));
  if (change.kind === 'up' && isGuarded(change.port, settings)) ports.push(change.port);
  return ports;
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
  const detection = await detectBackend(ctx.runner, iptablesVariant(ctx.settings), ctx.settings.lockTimeout, counters);
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

/** Whether either iptables variant is installed (a pure nftables host has neither). */
function hasIptables(runner: Runner): boolean {
  return ['iptables-nft-save', 'iptables-legacy-save', 'iptables-save'].some((tool) => runner.which(tool) !== undefined);
}

/**
 * The ports wanted after this event: derived from the live ones (hooks, blocklists), or fixed
 * whatever the table holds (sync, uninstall), read once the table's listing has started.
 */
type Desired =
  | { readonly fixed: () => Promise<readonly GuestPort[]>; readonly memo?: SyncMemo; readonly rebuild?: boolean }
  | ((base: readonly GuestPort[]) => readonly GuestPort[]);


async function applyTables(ctx: EngineContext, live: LiveState, tables: readonly TableSpec[], dryRun: boolean, bulk: boolean): Promise<TablePlan[]> {
  const plans = tables.map((table) => planTable(live.tables[table.family], table));
  const restores: (() => Promise<void>)[] = [];
  for (const plan of plans) {
    const payload = renderRestorePayload(plan);
    if (payload === '') continue;
    if (dryRun) ctx.log(`${plan.family === 6 ? 'ip6tables' : 'iptables'}-restore:\n${payload.trimEnd()}`);
    else restores.push(() => live.backends[plan.family].restore(payload, bulk ? BULK_SECONDS : undefined));
  }
  // Side by side on iptables-nft: a sync from nothing of 4,000 guests spends ~3.7 s and ~4.7 s in them.
  await restoreFamilies(live.backends[4].variant, restores);
  return plans;
}

/**
 * The nftables backend: every check in `bridge vif_guard`; iptables is not touched on the hook path.
 * When the table is missing or has an older layout (first run, upgrade, a switch from the iptables
 * backend), the ports recorded there and in vif-guard's iptables chains are carried over, and the
 * iptables chains are removed once the bridge table protects every port.
 */
async function applyNftables(ctx: EngineContext, dryRun: boolean, desiredFor: Desired, bulk: boolean, savedLists?: readonly Blocklist[], useCache = true): Promise<ApplyReport> {
  const skeleton = bridgeSkeleton(ctx.settings, true);
  const cacheFile = portCachePath(ctx.lockPath);
  const cached = !bulk && useCache ? readPortCache(cacheFile, skeleton.digest) : undefined;
  // sync also looks for the iptables backend's leftovers, read at the same time, unless this boot's
  // cache says the nftables backend has committed since (the iptables backend drops that cache).
  const leftovers = bulk && hasIptables(ctx.runner) && !existsSync(cacheFile);
  const early = leftovers ? readLive(ctx).catch(() => undefined) : undefined;
  const expected = { digest: skeleton.digest, ip: true };
  const listing = !cached && bulk ? listBridgeSets(ctx.runner, expected) : undefined;
  listing?.catch(() => undefined);
  const lists = savedLists ?? readBlocklists();
  // sync's memo (sync-memo.ts): the same inputs, caches and sets as a sync that found nothing to do.
  // sync --rebuild replaces the table whole (a hand edit of its rules, which the sets do not show).
  const rebuild = typeof desiredFor !== 'function' && desiredFor.rebuild === true;
  const memo = typeof desiredFor === 'function' || leftovers || rebuild ? undefined : desiredFor.memo;
  const kept = memo && listing ? await memo.recall(lists, listing) : undefined;
  if (kept) {
    await applyEbtables(ebtablesTarget(ctx, bulk), [], dryRun);
    return { engine: 'nftables', backend: 'nftables', variant: 'nftables', plans: [], bridgeScript: '', warnings: [], dryRun, ports: { added: [], updated: [], released: [] }, memo: kept.payload };
  }
  const reading = cached ? Promise.resolve(cached) : listing ? listing.then((texts) => parseBridgeSets(ctx.runner, expected, texts)) : readBridge(ctx.runner, expected);
  // Awaited below; this only keeps a failed read from counting as unhandled while the spec is built.
  reading.catch(() => undefined);
  // A fixed list (sync) does not depend on the table: it is read, and its spec built, while nft lists the sets.
  const fixed = typeof desiredFor === 'function' ? undefined : buildDesired(ctx, await desiredFor.fixed(), lists);
  const liveBridge = await reading;
  const records = new Map<GuestPort, LiveBridgePort>();
  const base = [...liveBridge.ports.values()].map((record) => {
    const port = guestPortOf(record);
    records.set(port, record);
    return port;
  });
  let iptablesLive: LiveState | undefined;
  const warnings: string[] = [];
  if ((leftovers || (!bulk && liveBridge.digest !== skeleton.digest)) && hasIptables(ctx.runner)) {
    iptablesLive = await (early ?? readLive(ctx).catch(() => undefined));
    if (iptablesLive) {
      const known = new Set(base.map((port) => port.ifname));
      for (const port of livePorts(iptablesLive.tables[4], iptablesLive.tables[6])) if (!known.has(port.ifname)) base.push(guestPortOfLive(port, iptablesLive.tables[6]));
      warnings.push(...iptablesLive.warnings);
    }
  }
  // A port this event does not change keeps its live record: nothing about it is recomputed or sent.
  const reuse = (port: GuestPort, block: BridgeBlock | undefined) => {
    const record = bulk ? undefined : records.get(port);
    return record && record.fields?.block === block?.digest ? record : undefined;
  };
  const desired = typeof desiredFor === 'function' ? buildDesired(ctx, desiredFor(base), lists, reuse) : fixed;
  const bridgeScript = planBridge(rebuild ? asOtherLayout(liveBridge) : liveBridge, desired);
  const rebuilt = liveBridge.digest !== desired?.digest;
  const wanted = new Map((desired?.ports ?? []).map((port) => [port.ifname, port]));
  const ports = {
    added: [...wanted.keys()].filter((ifname) => !liveBridge.ports.has(ifname)).sort(),
    updated: [...wanted.values()]
      .filter((port) => {
        const live = liveBridge.ports.get(port.ifname);
        if (live === undefined || live === port) return false;
        return rebuilt || !portUnchanged(live, port, true);
      })
      .map((port) => port.ifname)
      .sort(),
    released: [...liveBridge.ports.keys()].filter((ifname) => !wanted.has(ifname)).sort(),
  };
  if (bridgeScript !== '' && !ctx.runner.which('nft')) throw new VifGuardError('MISSING_TOOL', 'nft is not installed: the nftables backend needs it (apt-get install nftables, or backend = iptables)');
  if (!dryRun) {
    dropPortCache(cacheFile);
    // The iptables backend's cache no longer describes anything once this commits.
    dropPortCache(iptablesCachePath(ctx.lockPath));
  }
  try {
    await applyBridgeScript(ctx, bridgeScript, dryRun, bulk);
  } catch (error) {
    // The cache described a table that is no longer there as it was (deleted, rebuilt): ask the kernel.
    if (cached) return applyNftables(ctx, dryRun, desiredFor, bulk, savedLists, false);
    throw error;
  }
  if (!dryRun) writePortCache(cacheFile, desired);
  // Only now, with every port protected by the bridge table, drop what the iptables backend left.
  const plans = iptablesLive ? await applyTables(ctx, iptablesLive, NO_TABLES, dryRun, bulk) : [];
  // And what it left in ebtables (read only when this boot's marker says there is something).
  await applyEbtables(ebtablesTarget(ctx, bulk), [], dryRun);
  for (const warning of warnings) ctx.log(`warning: ${warning}`);
  if (memo && listing && !dryRun) {
    // Kept only when this sync found the sets as they should be and changed nothing: then the next
    // one with the same inputs, caches and listing has nothing to do either.
    const unchanged = bridgeScript === '' && plans.length === 0 && warnings.length === 0 && iptablesLive === undefined;
    await memo.keep(lists, unchanged ? await listing : undefined);
  }
  return { engine: 'nftables', backend: 'nftables', variant: 'nftables', plans, bridgeScript, warnings, dryRun, ports };
}

/** The live table as if it had another layout: planBridge then replaces it whole, in one transaction. */
function asOtherLayout(live: LiveBridge): LiveBridge {
  return live.exists ? { ...live, digest: undefined } : live;
}

/** The bridge table for these ports. */
function buildDesired(ctx: EngineContext, requested: readonly GuestPort[], lists: readonly Blocklist[], reuse?: Parameters<typeof buildBridgeSpec>[4]) {
  return buildBridgeSpec(requested, ctx.settings, true, blockResolver(ctx.settings, lists), reuse);
}

async function applyIptables(ctx: EngineContext, dryRun: boolean, desiredFor: (filter4: LiveTable, filter6: LiveTable, bridgePorts: readonly GuestPort[]) => Ruleset, bulk: boolean, rebuild = false): Promise<ApplyReport> {
  const live = await readLive(ctx);
  const viaEbtables = (await layer2Tool(ctx)) === 'ebtables';
  const skeleton = ctx.settings.layer2 && !viaEbtables ? bridgeSkeleton(ctx.settings, false) : undefined;
  const canNft = ctx.runner.which('nft') !== undefined;
  const liveBridge = canNft ? await readBridge(ctx.runner, skeleton ? { digest: skeleton.digest, ip: false } : undefined, bulk) : undefined;
  // Ports the nftables backend protected (a switch back to iptables) are carried over.
  const carried = liveBridge?.ip ? [...liveBridge.ports.values()].map(guestPortOf) : [];
  const built = desiredFor(live.tables[4], live.tables[6], carried);
  // Layer 2 in ebtables: the same port records, as ebtables chains; the bridge table (if any) goes.
  const ebChains = viaEbtables ? buildEbtables(built.bridge?.ports ?? [], ctx.settings) : [];
  const desired = viaEbtables ? { ...built, bridge: undefined } : built;
  if (desired.bridge && !canNft) {
    throw new VifGuardError('MISSING_TOOL', 'nft is not installed: MAC, ARP and ethertype checks need it (apt-get install nftables; on a kernel without nf_tables, apt-get install ebtables, or layer2 = no in vif-guard.conf)');
  }
  const bridgeScript = liveBridge ? planBridge(rebuild ? asOtherLayout(liveBridge) : liveBridge, desired.bridge) : '';
  const cacheFile = iptablesCachePath(ctx.lockPath);
  if (!dryRun) {
    // The nftables backend's cache does not describe these tables; this backend's is rewritten below.
    dropPortCache(portCachePath(ctx.lockPath));
    dropPortCache(cacheFile);
  }
  // Blocklist sets first: the chains that match on them commit only once they are filled.
  const ipsetTarget = { runner: ctx.runner, timeoutMs: commitMs(ctx, bulk), log: ctx.log };
  const referenced = referencedIpsets(desired.tables.flatMap((table) => table.chains.flatMap((chain) => chain.rules.map(renderRuleBody))));
  // ipset is asked only where blocklists are or were: the live chains or the desired ones match on a set.
  const liveRules = [live.tables[4], live.tables[6]].flatMap((table) => [...table.chains.values()].flatMap((chain) => chain.rules));
  const existingSets = referenced.size > 0 || referencedIpsets(liveRules).size > 0 ? await listIpsets(ctx.runner) : [];
  await createIpsets(ipsetTarget, desired.ipsets ?? [], existingSets, referenced, dryRun);
  // Order: IPv4, IPv6, then layer 2; each is one atomic transaction. Between two layer-2 tools, the
  // new one is in place before the old one goes.
  const plans = await applyTables(ctx, live, desired.tables, dryRun, bulk);
  const ebtables = () => applyEbtables(ebtablesTarget(ctx, bulk), ebChains, dryRun);
  if (viaEbtables) await ebtables();
  try {
    await applyBridgeScript(ctx, bridgeScript, dryRun, bulk);
  } catch (error) {
    // Creating the table is where a kernel too old for it says no (the IP checks are in place by now).
    if (liveBridge?.exists || !desired.bridge) throw error;
    const failure = toVifGuardError(error);
    throw new VifGuardError('APPLY', `${failure.shortMessage}: this kernel cannot load the layer-2 table (MAC, ARP and ethertype checks in nft's bridge family need concatenated interval sets, Linux 5.6); on an older kernel set layer2_tool = ebtables (or layer2 = no, IPv4/IPv6 checks only) in vif-guard.conf, or upgrade`, { details: failure.details, cause: error });
  }
  if (!viaEbtables) await ebtables();
  // Sets no chain matches on any more (a list rewritten, unblocked, or its port gone).
  await destroyIpsets(ipsetTarget, existingSets.filter((name) => !referenced.has(name)), dryRun);
  const records = dryRun ? undefined : iptablesRecords(built);
  const l2Key = viaEbtables ? ebLayoutDigest(ctx.settings) : desired.bridge?.digest;
  if (records) PortRecords.of(iptablesCacheHeader(live.detection.backend.variant, l2Key), records).write(cacheFile);
  for (const warning of live.warnings) ctx.log(`warning: ${warning}`);
  return { engine: 'iptables', backend: `iptables-${live.variant}`, variant: live.variant, plans, bridgeScript, warnings: live.warnings, dryRun };
}

function ebtablesTarget(ctx: EngineContext, bulk: boolean) {
  return { runner: ctx.runner, marker: besideLock(ctx.lockPath, '-ebtables.used'), timeoutMs: commitMs(ctx, bulk), log: ctx.log };
}

/**
 * A hook on the nftables backend with this boot's cache: only the ports the event touches are
 * parsed and planned (the one that changes, and one recorded under the same key), so the cost does
 * not grow with the number of guests. undefined when there is no usable cache.
 */
async function hookFromCache(ctx: EngineContext, change: PortChange, dryRun: boolean): Promise<ApplyReport | undefined> {
  return fromCache(ctx, dryRun, hookLists(change), (records) => ({
    affected: touchedIn(change, records),
    desired: () => (change.kind === 'up' && isGuarded(change.port, ctx.settings) ? [change.port] : []),
  }));
}

/** The lists a hook's port needs: those saved under its vif and guest names (a leaving port needs none). */
function hookLists(change: PortChange): Blocklist[] {
  return change.kind === 'up' ? readBlocklistsOf([change.port.ifname, change.port.guest]) : [];
}

/**
 * An incremental commit from this boot's cache: only the ports `pick` names are parsed, planned and
 * rewritten, so the cost does not grow with the number of guests. undefined when there is no usable
 * cache or the commit fails (the caller then reads the kernel).
 */
async function fromCache(
  ctx: EngineContext,
  dryRun: boolean,
  savedLists: readonly Blocklist[] | undefined,
  pick: (records: PortRecords) => { affected: ReadonlySet<string>; desired: (live: LiveBridge) => GuestPort[] },
): Promise<ApplyReport | undefined> {
  const skeleton = bridgeSkeleton(ctx.settings, true);
  const cacheFile = portCachePath(ctx.lockPath);
  const records = PortRecords.read(cacheFile, skeleton.digest);
  if (!records) return undefined;
  const { affected, desired: desiredOf } = pick(records);
  const live = bridgeFromRecords(skeleton.digest, records.recordsOf(affected));
  if (!live) return undefined;
  const lists = savedLists ?? readBlocklists();
  const blocks = blockResolver(ctx.settings, lists);
  const ports = desiredOf(live).map((port) => bridgePort(port, blocks?.(port)));
  const desired = { ip: true, digest: skeleton.digest, body: skeleton.body, ports };
  // Other ports' MACs are not looked up: a MAC shared by two vifs (a misconfiguration that breaks the
  // bridge anyway) may lose its NOTRACK when one of them goes; sync puts it back.
  const bridgeScript = planBridge(live, desired);
  if (!dryRun && bridgeScript !== '') dropPortCache(cacheFile);
  try {
    await applyBridgeScript(ctx, bridgeScript, dryRun, false);
  } catch {
    return undefined;
  }
  if (!dryRun && bridgeScript !== '') {
    for (const ifname of affected) records.delete(ifname);
    for (const port of ports) records.set(port.ifname, port.comment);
    records.write(cacheFile);
  }
  const released = [...affected].filter((ifname) => live.ports.has(ifname) && !ports.some((port) => port.ifname === ifname));
  return {
    engine: 'nftables',
    backend: 'nftables',
    variant: 'nftables',
    plans: [],
    bridgeScript,
    warnings: [],
    dryRun,
    ports: { added: ports.filter((port) => !live.ports.has(port.ifname)).map((port) => port.ifname), updated: ports.filter((port) => live.ports.has(port.ifname) && bridgeScript !== '').map((port) => port.ifname), released },
  };
}

/** Apply one port event (hook path): lock, read live, diff, one transaction per table touched. */
export async function applyPortChange(ctx: EngineContext, change: PortChange, dryRun = false): Promise<ApplyReport> {
  return withLock(ctx.runner, ctx.lockPath, ctx.settings.lockTimeout, async () => {
    if ((ctx.engine ?? (await chooseEngine(ctx.runner, ctx.settings, ctx.lockPath))) === 'nftables') {
      // A failed commit from the cache (table deleted or rebuilt behind its back) falls back to reading the kernel.
      return (await hookFromCache(ctx, change, dryRun)) ?? applyNftables(ctx, dryRun, (base) => portsAfterChange(base, change, ctx.settings), false, undefined, false);
    }
    if (change.kind === 'up' && isGuarded(change.port, ctx.settings)) await ctx.prepareIptables?.();
    const lists = hookLists(change);
    const fast = await iptablesFromCache(ctx, change, dryRun, lists, lists.length > 0 || hasBlocklists());
    if (fast) return fast;
    // The full path may rebuild every port (a table changed behind vif-guard's back): every list.
    const blocks = blockResolver(ctx.settings, readBlocklists());
    return applyIptables(ctx, dryRun, (filter4, filter6, carried) => {
      if (carried.length === 0) return desiredAfterChange(filter4, filter6, change, ctx.settings, blocks);
      const known = new Set(livePorts(filter4, filter6).map((port) => port.ifname));
      const all = [...livePorts(filter4, filter6).map((port) => guestPortOfLive(port, filter6)), ...carried.filter((port) => !known.has(port.ifname))];
      return buildRuleset(portsAfterChange(all, change, ctx.settings), ctx.settings, 'iptables', blocks);
    }, false);
  });
}

/**
 * Make vif-guard's state exactly what these ports need (sync path). Given a reader (sync's
 * inventory), the ports are read under the lock: a hook that runs meanwhile waits, instead of
 * committing a guest that a list read just before it would then release. On nftables the reader
 * runs while nft lists the table. `rebuild` also replaces the bridge table whole, in one transaction,
 * instead of repairing its elements: for rules edited by hand inside it, which sync does not read.
 */
export async function applyFullState(ctx: EngineContext, ports: readonly GuestPort[] | (() => Promise<readonly GuestPort[]>), dryRun = false, memo?: SyncMemo, rebuild = false): Promise<ApplyReport> {
  const read = typeof ports === 'function' ? ports : async () => ports;
  return withLock(ctx.runner, ctx.lockPath, ctx.settings.lockTimeout, async () => {
    const guarded = async () => (await read()).filter((port) => isGuarded(port, ctx.settings));
    if ((ctx.engine ?? (await chooseEngine(ctx.runner, ctx.settings, ctx.lockPath))) === 'nftables') return applyNftables(ctx, dryRun, { fixed: guarded, ...(memo ? { memo } : {}), rebuild }, true);
    const ruleset = buildRuleset(await read(), ctx.settings, 'iptables', blockResolver(ctx.settings, readBlocklists()));
    return applyIptables(ctx, dryRun, () => ruleset, true, rebuild);
  });
}

/** What a `block` or `unblock` changes, decided under the lock from the lists saved then. */
export interface BlocklistEdit {
  /** The vif or guest name whose lists change: only its ports are rewritten. */
  readonly target: string;
  /** Every list once the command is done, from every list saved now. */
  readonly lists: (saved: readonly Blocklist[]) => readonly Blocklist[];
  /** Saves the change once it is committed, still under the lock; if it throws, the kernel is put back as the saved lists say. */
  readonly save: () => void;
}

/**
 * Bring the running ports' blocklists in line with an edit of the saved lists, and save it, all
 * under the lock: a hook that restores a guest's lists, or another `block`, reads the files and the
 * kernel as they are after this command, never the one without the other.
 */
export async function applyBlocklists(ctx: EngineContext, edit: BlocklistEdit, dryRun: boolean): Promise<ApplyReport> {
  return withLock(ctx.runner, ctx.lockPath, ctx.settings.lockTimeout, async () => {
    const saved = readBlocklists();
    const lists = edit.lists(saved);
    const report = await blocklistsUnlocked(ctx, edit.target, lists, dryRun, saved);
    if (dryRun) return report;
    try {
      edit.save();
    } catch (error) {
      // Not saved means the next sync or hook would undo it: the kernel goes back to what is saved.
      await blocklistsUnlocked({ ...ctx, log: () => undefined }, edit.target, saved, false, lists).catch(() => undefined);
      throw error;
    }
    return report;
  });
}

/**
 * Make the running ports of `target` (a vif or guest name) have these lists (in place of `saved`). nftables: only block sets,
 * chains and map entries change. iptables: the blocked ports' chains and their ipsets.
 */
async function blocklistsUnlocked(ctx: EngineContext, target: string, lists: readonly Blocklist[], dryRun: boolean, saved: readonly Blocklist[]): Promise<ApplyReport> {
  if ((ctx.engine ?? (await chooseEngine(ctx.runner, ctx.settings, ctx.lockPath))) !== 'nftables') {
    // iptables: every running port's chains from the live tables, with these lists' sets; only the
    // chains of ports whose lists changed differ, so only those are rewritten.
    if (!ctx.runner.which('ipset')) throw new VifGuardError('MISSING_TOOL', 'blocklists on the iptables backend need ipset (apt-get install ipset)');
    const incremental = await iptablesBlocklistsFromCache(ctx, saved, lists, dryRun);
    if (incremental) return incremental;
    const blocks = blockResolver(ctx.settings, lists);
    return applyIptables(ctx, dryRun, (filter4, filter6) => buildRuleset(livePorts(filter4, filter6).map((port) => guestPortOfLive(port, filter6)), ctx.settings, 'iptables', blocks), false);
  }
  // Only the target's ports (its vif, or every vif of its guest) whose lists changed: another guest's
  // ports are never touched by a block or unblock.
  const incremental = await fromCache(ctx, dryRun, lists, (records) => {
    const affected = new Set<string>();
    for (const ifname of records.named(target)) {
      const fields = parsePortComment(records.get(ifname) ?? '');
      if (portListsDigest(lists, { ifname, guest: fields?.guest ?? '-' }) !== fields?.block) affected.add(ifname);
    }
    return { affected, desired: (live) => [...live.ports.values()].map(guestPortOf) };
  });
  return incremental ?? applyNftables(ctx, dryRun, (base) => base, false, lists, false);
}

/** The running ports a blocklist target (a vif or a guest name) names, from this boot's cache or the kernel. */
export async function runningPortsOf(ctx: EngineContext, target: string): Promise<string[]> {
  const records = PortRecords.read(portCachePath(ctx.lockPath), bridgeSkeleton(ctx.settings, true).digest);
  if (records) return records.named(target);
  return (await protectedPorts(ctx).catch(() => [])).filter((port) => port.ifname === target || port.guest === target).map((port) => port.ifname);
}

/** The ports the bridge table protects now (nftables backend), from their recorded configuration. */
export async function protectedPorts(ctx: EngineContext): Promise<GuestPort[]> {
  // The iptables backend's cache while it is the one in use (the nftables backend drops it when it commits).
  const text = readIfPresent(iptablesCachePath(ctx.lockPath));
  const records = text === undefined ? undefined : PortRecords.fromText(text);
  const iptables = records && bridgeFromRecords('-', records.allRecords());
  if (iptables) return [...iptables.ports.values()].map(guestPortOf);
  // This boot's cache when there is one (what the last commit left), else the kernel.
  const live = readPortCache(portCachePath(ctx.lockPath), bridgeSkeleton(ctx.settings, true).digest) ?? (await readBridge(ctx.runner, undefined, false));
  return [...live.ports.values()].map(guestPortOf);
}

/** Remove every vif-guard chain, jump and table (uninstall). */
export async function removeEverything(ctx: EngineContext, dryRun = false): Promise<ApplyReport> {
  return withLock(ctx.runner, ctx.lockPath, ctx.settings.lockTimeout, async () => {
    if (!hasIptables(ctx.runner)) return applyNftables(ctx, dryRun, { fixed: async () => [] }, true);
    return applyIptables(ctx, dryRun, () => ({ tables: NO_TABLES, bridge: undefined }), true);
  });
}

/** What status and doctor compare: both sides as they are, with counters, and the backend that enforces. */
export async function readEverything(ctx: EngineContext): Promise<{ state: StatusLive; backend: string; detection: Detection | undefined; warnings: string[] }> {
  const engine = await chooseEngine(ctx.runner, ctx.settings);
  let iptables: LiveState | undefined;
  if (engine === 'iptables') iptables = await readLive(ctx, true);
  // The nftables backend still reports what the iptables backend may have left behind.
  else if (hasIptables(ctx.runner)) iptables = await readLive(ctx, true).catch(() => undefined);
  const empty = parseSave('*filter\nCOMMIT\n', 'filter');
  const bridge = ctx.runner.which('nft') ? await readBridge(ctx.runner, undefined, true) : undefined;
  const eb = engine === 'iptables' && (await layer2Tool(ctx)) === 'ebtables' ? await readEbtables(ctx.runner, true) : undefined;
  if (eb && 'error' in eb) iptables?.warnings.push(`ebtables cannot be read: ${eb.error}`);
  return {
    state: { filter4: iptables?.tables[4] ?? empty, filter6: iptables?.tables[6] ?? empty, bridge, engine, ebtables: eb && 'live' in eb ? eb.live : undefined },
    backend: engine === 'nftables' ? 'nftables' : `iptables-${iptables?.variant ?? '?'}`,
    detection: iptables?.detection,
    warnings: iptables?.warnings ?? [],
  };
}
