import { existsSync } from 'node:fs';
import { readIfPresent } from '../files.js';
import { iptablesVariant, type Settings } from '../config/settings.js';
import type { GuestPort } from '../guest/model.js';
import { parseAddress, type GuestAddress } from '../guest/validate.js';
import type { Runner } from '../runner.js';
import { toVifGuardError, VifGuardError } from '../errors.js';
import { besideLock, withLock } from '../lock.js';
import { createIptablesBackend, detectBackend, type Detection, type IptablesBackend, type Variant } from '../backend/iptables.js';
import { parseSave, type LiveTable } from '../backend/save-parse.js';
import { planPortEvent, planTable, renderRestorePayload, type PortEventPlan, type TablePlan } from '../backend/diff.js';
import { iptablesCacheHeader, iptablesCachePath, readIptablesCache } from '../backend/iptables-cache.js';
import { dropPortCache, portCachePath, PortRecords, readPortCache, writePortCache } from '../backend/bridge-cache.js';
import { createIpsets, destroyIpsets, ipsetsOfPort, listIpsets, referencedIpsets } from '../backend/ipset.js';
import { applyEbtables, planEbtablesEvent, readEbtables, readEbtablesChain, restoreEbtables } from '../backend/ebtables.js';
import { buildEbtables, ebLayoutDigest, ebPortChain } from '../rules/ebtables.js';
import { applyBridge, bridgeFromRecords, readBridgeSets, planBridge, portMatches, readBridge, type LiveBridge, type LiveBridgePort } from '../backend/nft-bridge.js';
import { blockedPort, buildFilterTable, buildRuleset, FILTER_JUMPS, NO_TABLES, type Engine, type PortChains } from '../rules/build.js';
import { bridgeBlock, bridgePort, bridgeSkeleton, buildBridgeSpec, layer2Port, parsePortComment } from '../rules/bridge.js';
import { blocksFor, hasBlocklists, listsDigest, listsFor, portListsDigest, readBlocklists, readBlocklistsOf, type Blocklist } from '../blocklist/store.js';
import { linkLocalFromMac } from '../guest/eui64.js';
import { existingInterfaces, withIfindex } from '../kernel/ifindex.js';
import { buildPortIn6Chain, buildPortInChain, buildPortOut6Chain, buildPortOutChain, isGuarded, portMetaOfRules, type PortIpsets } from '../rules/port.js';
import { FORWARD_CHAIN, portInChain, portOfChain, portOutChain } from '../rules/names.js';
import type { BridgeBlock, ChainSpec, IpsetSpec, Rule, Ruleset, TableSpec } from '../rules/types.js';
import { shortDigest } from '../digest.js';
import { renderRuleBody } from '../backend/render.js';
import { ipv4Addresses } from '../guest/model.js';
import type { LiveState as StatusLive } from './status.js';
import { chooseEngine, layer2Tool } from './choose.js';

export interface EngineContext {
  readonly runner: Runner;
  readonly settings: Settings;
  readonly lockPath: string;
  readonly log: (line: string) => void;
  /** Already chosen; otherwise chooseEngine decides, under the lock. */
  readonly engine?: Engine;
  /** Run under the lock when the iptables backend is about to protect a port (hooks: br_netfilter). */
  readonly prepareIptables?: () => Promise<void>;
}

export interface ApplyReport {
  readonly engine: Engine;
  /** `nftables`, `iptables-nft` or `iptables-legacy`. */
  readonly backend: string;
  /** The iptables variant, or `nftables`. */
  readonly variant: string;
  /** One plan per family: IPv4, then IPv6. */
  readonly plans: readonly TablePlan[];
  /** nft script sent (or that would be) for the bridge table; empty when unchanged. */
  readonly bridgeScript: string;
  readonly warnings: readonly string[];
  readonly dryRun: boolean;
  /** nftables backend: ports whose elements were added, changed or removed. */
  readonly ports?: { readonly added: string[]; readonly updated: string[]; readonly released: string[] };
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
  readonly guest: string;
  readonly bridge: string | undefined;
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
      guest: meta?.guest ?? '-',
      bridge: meta?.bridge,
    });
  }
  return ports;
}

/** The port an event names, by interface name and by key: the same port under another name (renamed since) is replaced or removed too. */
function changed(change: PortChange): { readonly ifname: string; readonly key: string | undefined; readonly touches: (port: { ifname: string; key?: string | undefined }) => boolean } {
  const ifname = change.kind === 'up' ? change.port.ifname : change.ifname;
  const key = change.kind === 'up' ? change.port.key : change.key;
  return { ifname, key, touches: (port) => port.ifname === ifname || (key !== undefined && port.key === key) };
}

/** The same, among a cache's records: the port's name and any recorded under its key. */
function touchedIn(change: PortChange, records: PortRecords): Set<string> {
  const { ifname, key } = changed(change);
  return new Set([ifname, ...(key === undefined ? [] : records.withKey(key))]);
}

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
    const sets = blocked?.sets;
    ipsets = blocked?.specs ?? [];
    ports.push({
      ifname: target,
      v4: { ifname: target, in: buildPortInChain(port, settings, sets), out: buildPortOutChain(port, settings, sets) },
      v6: { ifname: target, in: buildPortIn6Chain(port, settings, sets), out: buildPortOut6Chain(port, settings, sets) },
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

/** What the iptables side and the bridge table hold: the ports either backend left there. */
export function guestPortOf(port: LiveBridgePort): GuestPort {
  const fields = port.fields;
  const source = { source: `bridge vif_guard element ${port.ifname}` };
  let addresses: GuestAddress[] | undefined;
  // Parsed on first use: a hook reads thousands of ports and changes one.
  return {
    ifname: port.ifname,
    guest: fields?.guest ?? '-',
    bridge: fields?.bridge,
    mac: fields?.mac ?? port.mac,
    key: fields?.key,
    ifindex: fields?.ifindex ?? port.ifindex,
    get addresses() {
      addresses ??= (fields?.addresses ?? [...port.v4, ...port.v6]).flatMap((text) => {
        try {
          return [parseAddress(text, source)];
        } catch {
          return [];
        }
      });
      return addresses;
    },
  };
}

function guestPortOfLive(port: LivePort, filter6: LiveTable): GuestPort {
  const v6 = (filter6.chains.get(portInChain(port.ifname))?.rules ?? []).flatMap((rule) => {
    const cidr = SOURCE.exec(rule)?.[1];
    return cidr && cidr !== '::/128' ? [parseAddress(cidr, { source: `live chain ${portInChain(port.ifname)}` })] : [];
  });
  const ll = port.mac ? linkLocalFromMac(port.mac).cidr : undefined;
  return { ifname: port.ifname, guest: port.guest, bridge: port.bridge, mac: port.mac, addresses: [...port.ipv4, ...v6.filter((address) => address.cidr !== ll)], key: port.key };
}

/** Each port's blocklists, for the bridge table; undefined when none are saved. */
export function blockResolver(settings: Settings, lists: readonly Blocklist[]): ((port: GuestPort) => BridgeBlock | undefined) | undefined {
  if (lists.length === 0) return undefined;
  return (port) => {
    const mine = listsFor(lists, port);
    return mine.length ? bridgeBlock(port.ifname, listsDigest(mine), settings, () => blocksFor(mine, port) ?? { inbound: [], outbound: [] }) : undefined;
  };
}

/** Whether either iptables variant is installed (a pure nftables host has neither). */
function hasIptables(runner: Runner): boolean {
  return ['iptables-nft-save', 'iptables-legacy-save', 'iptables-save'].some((tool) => runner.which(tool) !== undefined);
}

/** Hooks must finish inside libxl's 40 s; sync and uninstall may rewrite thousands of chains and get longer. */
const BULK_SECONDS = 300;

type Desired = (base: readonly GuestPort[]) => readonly GuestPort[];

async function applyTables(ctx: EngineContext, live: LiveState, tables: readonly TableSpec[], dryRun: boolean, bulk: boolean): Promise<TablePlan[]> {
  const plans = tables.map((table) => planTable(live.tables[table.family], table));
  for (const plan of plans) {
    const payload = renderRestorePayload(plan);
    if (payload === '') continue;
    if (dryRun) ctx.log(`${plan.family === 6 ? 'ip6tables' : 'iptables'}-restore:\n${payload.trimEnd()}`);
    else await live.backends[plan.family].restore(payload, bulk ? BULK_SECONDS : undefined);
  }
  return plans;
}

async function applyBridgeScript(ctx: EngineContext, script: string, dryRun: boolean, bulk: boolean): Promise<void> {
  if (script === '') return;
  if (dryRun) ctx.log(`nft -f:\n${script.trimEnd()}`);
  else await applyBridge(ctx.runner, script, commitMs(ctx, bulk) / 1000);
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
  const liveBridge = cached ?? (bulk ? await readBridgeSets(ctx.runner, expected) : await readBridge(ctx.runner, expected));
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
  // Ports not carried over from the live table get their interface index (the fast path's key) from sysfs.
  const requested = desiredFor(base);
  const existing = requested.length > 8 ? existingInterfaces() : undefined;
  const wantedPorts = requested.map((port) => (records.has(port) ? port : withIfindex(port, existing)));
  const desired = buildBridgeSpec(wantedPorts, ctx.settings, true, blockResolver(ctx.settings, savedLists ?? readBlocklists()), reuse);
  const bridgeScript = planBridge(liveBridge, desired);
  const rebuilt = liveBridge.digest !== desired?.digest;
  const wanted = new Map((desired?.ports ?? []).map((port) => [port.ifname, port]));
  const ports = {
    added: [...wanted.keys()].filter((ifname) => !liveBridge.ports.has(ifname)).sort(),
    updated: [...wanted.values()]
      .filter((port) => {
        const live = liveBridge.ports.get(port.ifname);
        if (live === undefined || live === port) return false;
        return rebuilt || live.comment !== port.comment || !portMatches(live, port, true);
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
  return { engine: 'nftables', backend: 'nftables', variant: 'nftables', plans, bridgeScript, warnings, dryRun, ports };
}

async function applyIptables(ctx: EngineContext, dryRun: boolean, desiredFor: (filter4: LiveTable, filter6: LiveTable, bridgePorts: readonly GuestPort[]) => Ruleset, bulk: boolean): Promise<ApplyReport> {
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
  const bridgeScript = liveBridge ? planBridge(liveBridge, desired.bridge) : '';
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

/** How long one commit may take: a hook's fits inside libxl's 40 s, sync's and uninstall's may rewrite thousands of chains. */
function commitMs(ctx: EngineContext, bulk: boolean): number {
  return (bulk ? BULK_SECONDS : ctx.settings.lockTimeout + 10) * 1000;
}

function tableAsLive(spec: TableSpec | undefined): LiveTable {
  return { table: 'filter', chains: new Map((spec?.chains ?? []).map((chain) => [chain.name, { policy: '-', rules: chain.rules.map(renderRuleBody), counters: [] }])) };
}

/** A port's chains in both families (matching on its blocklists' sets), and a digest of their rules (kept in the cache: an unchanged port is not rewritten). */
function portChainsOf(port: GuestPort, settings: Settings, sets?: PortIpsets): { 4: ChainSpec[]; 6: ChainSpec[]; digest: string } {
  const chains = { 4: [buildPortInChain(port, settings, sets), buildPortOutChain(port, settings, sets)], 6: [buildPortIn6Chain(port, settings, sets), buildPortOut6Chain(port, settings, sets)] };
  return { ...chains, digest: chainsDigest([...chains[4], ...chains[6]]) };
}

function chainsDigest(chains: readonly ChainSpec[]): string {
  return shortDigest(chains.map((chain) => `${chain.name}\n${chain.rules.map(renderRuleBody).join('\n')}`).join('\n'));
}

/** Each guarded port's layer-2 record after an iptables commit, for the cache; undefined when nothing of vif-guard's is left. */
function iptablesRecords(desired: Ruleset): [string, string][] | undefined {
  const [spec4, spec6] = [desired.tables.find((table) => table.family === 4), desired.tables.find((table) => table.family === 6)];
  if (!spec4?.chains.some((chain) => chain.name === FORWARD_CHAIN)) return undefined;
  const [live4, live6] = [tableAsLive(spec4), tableAsLive(spec6)];
  const bridged = new Map((desired.bridge?.ports ?? []).map((port) => [port.ifname, port.comment]));
  return livePorts(live4, live6).map((port) => {
    const comment = bridged.get(port.ifname) ?? layer2Port(guestPortOfLive(port, live6)).comment;
    const chains = [port.v4.in, port.v4.out, ...(port.v6 ? [port.v6.in, port.v6.out] : [])];
    return [port.ifname, `${comment}\t${chainsDigest(chains)}`];
  });
}

/** This boot's iptables cache, when it was written for the layer-2 layout and tool in use. */
async function openIptablesCache(ctx: EngineContext) {
  const viaEbtables = ctx.settings.layer2 && (await layer2Tool(ctx)) === 'ebtables';
  const l2 = ctx.settings.layer2 && !viaEbtables && ctx.runner.which('nft') ? bridgeSkeleton(ctx.settings, false) : undefined;
  if (ctx.settings.layer2 && !viaEbtables && !l2) return undefined;
  const cacheFile = iptablesCachePath(ctx.lockPath);
  const cache = readIptablesCache(cacheFile, iptablesVariant(ctx.settings), viaEbtables ? ebLayoutDigest(ctx.settings) : l2?.digest);
  return cache && { ...cache, cacheFile, viaEbtables, l2 };
}

/** One running port as its four chains say (one `-S` each, not the tables); undefined when one cannot be read. */
async function readPortFromChains(ctx: EngineContext, variant: Variant, ifname: string): Promise<GuestPort | undefined> {
  const names = [portInChain(ifname), portOutChain(ifname)];
  const [filter4, filter6] = await Promise.all(([4, 6] as const).map((family) => createIptablesBackend(ctx.runner, variant, ctx.settings.lockTimeout, family).chains(names)));
  if (!filter4 || !filter6) return undefined;
  const [port] = livePorts(filter4, filter6);
  return port && port.ifname === ifname ? guestPortOfLive(port, filter6) : undefined;
}

/**
 * `block` / `unblock` on the iptables backend with this boot's cache: only the ports whose lists
 * change are read (their four chains: the cache holds no IPv6 addresses) and rewritten, each as its
 * hook would, instead of reading and diffing both tables (2.7 s with 4,000 guests). undefined when
 * there is no usable cache or a port cannot be read back; the caller then takes the full path.
 */
async function iptablesBlocklistsFromCache(ctx: EngineContext, saved: readonly Blocklist[], lists: readonly Blocklist[], dryRun: boolean): Promise<ApplyReport | undefined> {
  const opened = await openIptablesCache(ctx);
  if (!opened) return undefined;
  const recorded = bridgeFromRecords('-', opened.records.allRecords());
  if (!recorded) return undefined;
  // The iptables records keep no list digest: compare the lists saved now with the ones about to be.
  const affected = [...recorded.ports.values()].map(guestPortOf).filter((port) => portListsDigest(saved, port) !== portListsDigest(lists, port));
  const ports = await Promise.all(affected.map((port) => readPortFromChains(ctx, opened.variant, port.ifname)));
  if (ports.some((port) => port === undefined)) return undefined;
  const plans: TablePlan[] = [];
  for (const port of ports as GuestPort[]) {
    const one = await iptablesFromCache(ctx, { kind: 'up', port }, dryRun, lists, true);
    if (!one) return undefined;
    plans.push(...one.plans);
  }
  return { engine: 'iptables', backend: `iptables-${opened.variant}`, variant: opened.variant, plans, bridgeScript: '', warnings: [], dryRun };
}

/**
 * A hook on the iptables backend with this boot's cache: the restore payloads are computed from the
 * cached port names (only the dispatch chains on the changed names' paths move) instead of from
 * iptables-save, which reads every chain (1.5 s with 4,000 guests). undefined when there is no usable
 * cache or a commit fails (the table is not what the cache says); the caller then reads the tables.
 */
async function iptablesFromCache(ctx: EngineContext, change: PortChange, dryRun: boolean, lists: readonly Blocklist[], setsMayExist = lists.length > 0): Promise<ApplyReport | undefined> {
  const opened = await openIptablesCache(ctx);
  if (!opened) return undefined;
  const { records, variant, cacheFile, viaEbtables, l2 } = opened;
  const target = changed(change).ifname;
  const affected = touchedIn(change, records);
  const before = records.entries().map(([ifname]) => ifname);
  const port = change.kind === 'up' && isGuarded(change.port, ctx.settings) ? change.port : undefined;
  const after = [...before.filter((ifname) => !affected.has(ifname)), ...(port ? [port.ifname] : [])];
  // Its blocklists, as ipsets its chains match on (created before the commit, like the full path's).
  const blocked = port && lists.length ? blockedPort(port, blockResolver(ctx.settings, lists)) : undefined;
  const chains = port && portChainsOf(port, ctx.settings, blocked?.sets);
  const record = port && layer2Port(port);
  const line = record && chains && `${record.comment}\t${chains.digest}`;
  // The same port, configured the same, with the same rules: its chains (and their counters) stay.
  const same = line !== undefined && affected.size === 1 && records.get(target) === line;
  // Upstream Xen's vif-bridge inserts ACCEPT rules at the top of FORWARD on every online (xen-hotplug.md
  // 3.4): a physdev-out ACCEPT above the jump would let any guest's spoofed frames through to that vif.
  // So FORWARD itself is read (one chain: ~4 ms with iptables-nft) and the jump moved back on top when
  // anything is above it. On legacy, reading one chain reads the whole table (~70 ms with 4,000
  // guests) and a commit replaces the whole table anyway: when this event commits something, the jump
  // is moved back on top in the same commit, unread. Stock scripts touch nothing else; INPUT and IPv6
  // are checked for presence, and sync puts them back on top.
  const forwardJump = FILTER_JUMPS.find((jump) => jump.chain === 'FORWARD');
  if (!forwardJump) return undefined;
  const backends = { 4: createIptablesBackend(ctx.runner, variant, ctx.settings.lockTimeout, 4), 6: createIptablesBackend(ctx.runner, variant, ctx.settings.lockTimeout, 6) };
  // Something to commit: this port's chains are new or different, or a recorded port goes.
  const commits = port ? !same : [...affected].some((ifname) => records.get(ifname) !== undefined);
  let retop = true;
  if (variant !== 'legacy' || !commits) {
    const forward = await backends[4].chains(['FORWARD']);
    if (!forward) return undefined;
    retop = forward.chains.get('FORWARD')?.rules[0] !== renderRuleBody(forwardJump.rule);
  }
  const plans = ([4, 6] as const).map((family) =>
    planPortEvent({ family, before, after, jumps: FILTER_JUMPS, retop: family === 4 && retop ? [forwardJump] : [], up: port && chains && !same ? { ifname: port.ifname, chains: chains[family] } : undefined }),
  );
  let bridgeScript = '';
  if (l2) {
    const live = bridgeFromRecords(l2.digest, records.recordsOf(affected));
    if (!live) return undefined;
    bridgeScript = planBridge(live, { ip: false, digest: l2.digest, body: l2.body, ports: record ? [record] : [] });
  }
  let ebtablesPayload = '';
  if (viaEbtables) {
    // One port at a time (a rename under the same key takes the full path); PREROUTING alone is read.
    const prerouting = [...affected].every((ifname) => ifname === target) ? await readEbtablesChain(ctx.runner, 'PREROUTING') : undefined;
    if (!prerouting) return undefined;
    const chainOf = (ifname: string) => {
      const recorded = bridgeFromRecords('-', records.recordsOf([ifname]))?.ports.get(ifname);
      return recorded && ebPortChain(recorded, ctx.settings).name;
    };
    const lines = planEbtablesEvent({ before, after, target, oldChain: records.get(target) === undefined ? undefined : chainOf(target), newChain: record && ebPortChain(record, ctx.settings), chainOf, prerouting });
    if (!lines) return undefined;
    ebtablesPayload = lines.length ? `*nat\n${lines.join('\n')}\n` : '';
  }
  const report: ApplyReport = { engine: 'iptables', backend: `iptables-${variant}`, variant, plans, bridgeScript, warnings: [], dryRun };
  // Sets exist only where lists are (or, for unblock, were) saved; the port's new ones are made before its chains use them.
  const ipsetTarget = { runner: ctx.runner, timeoutMs: commitMs(ctx, false), log: ctx.log };
  const existingSets = setsMayExist ? await listIpsets(ctx.runner) : [];
  const referenced = chains && !same ? referencedIpsets([...chains[4], ...chains[6]].flatMap((chain) => chain.rules.map(renderRuleBody))) : new Set<string>();
  if (blocked && referenced.size) await createIpsets(ipsetTarget, blocked.specs, existingSets, referenced, dryRun);
  if (dryRun) {
    for (const plan of plans) ctx.log(`${plan.family === 6 ? 'ip6tables' : 'iptables'}-restore:\n${renderRestorePayload(plan).trimEnd()}`);
    if (bridgeScript) ctx.log(`nft -f:\n${bridgeScript.trimEnd()}`);
    if (ebtablesPayload) ctx.log(`ebtables-restore --noflush:\n${ebtablesPayload.trimEnd()}`);
    return report;
  }
  dropPortCache(cacheFile);
  const restore = (family: 4 | 6) => {
    const plan = plans[family === 4 ? 0 : 1] as PortEventPlan;
    return backends[family].restore(`*filter\n${[...plan.checks, ...plan.lines].join('\n')}\nCOMMIT\n`);
  };
  // iptables-nft commits each family on its own; legacy takes the xtables lock for both, so one after the other.
  const tables = variant === 'legacy' ? restore(4).then(() => restore(6)) : Promise.all([restore(4), restore(6)]);
  const layer2 = ebtablesPayload ? restoreEbtables(ctx.runner, ebtablesPayload, commitMs(ctx, false)) : applyBridgeScript(ctx, bridgeScript, false, false);
  const results = await Promise.allSettled([tables, layer2]);
  if (results.some((result) => result.status === 'rejected')) return undefined;
  for (const ifname of affected) records.delete(ifname);
  if (record && line) records.set(record.ifname, line);
  records.write(cacheFile);
  // The sets the replaced or removed chains matched on; the kept port's stay.
  if (!same) await destroyIpsets(ipsetTarget, [...affected].flatMap((ifname) => ipsetsOfPort(existingSets, ifname)).filter((name) => !referenced.has(name)), false);
  return report;
}

/**
 * A hook on the nftables backend with this boot's cache: only the ports the event touches are
 * parsed and planned (the one that changes, and one recorded under the same key), so the cost does
 * not grow with the number of guests. undefined when there is no usable cache.
 */
async function hookFromCache(ctx: EngineContext, change: PortChange, dryRun: boolean): Promise<ApplyReport | undefined> {
  return fromCache(ctx, dryRun, hookLists(change), (records) => ({
    affected: touchedIn(change, records),
    desired: () => (change.kind === 'up' && isGuarded(change.port, ctx.settings) ? [withIfindex(change.port)] : []),
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

/** Make vif-guard's state exactly what these ports need (sync path). */
export async function applyFullState(ctx: EngineContext, ports: readonly GuestPort[], dryRun = false): Promise<ApplyReport> {
  return withLock(ctx.runner, ctx.lockPath, ctx.settings.lockTimeout, async () => {
    const guarded = ports.filter((port) => isGuarded(port, ctx.settings));
    if ((ctx.engine ?? (await chooseEngine(ctx.runner, ctx.settings, ctx.lockPath))) === 'nftables') return applyNftables(ctx, dryRun, () => guarded, true);
    const ruleset = buildRuleset(ports, ctx.settings, 'iptables', blockResolver(ctx.settings, readBlocklists()));
    return applyIptables(ctx, dryRun, () => ruleset, true);
  });
}

/**
 * Bring the running ports' blocklists in line with these lists (what `block` / `unblock` are about
 * to save, in place of `saved`). nftables: only block sets, chains and map entries change. iptables: the blocked ports'
 * chains and their ipsets.
 */
export async function applyBlocklists(ctx: EngineContext, lists: readonly Blocklist[], dryRun: boolean, saved: readonly Blocklist[]): Promise<ApplyReport> {
  return withLock(ctx.runner, ctx.lockPath, ctx.settings.lockTimeout, async () => {
    if ((ctx.engine ?? (await chooseEngine(ctx.runner, ctx.settings, ctx.lockPath))) !== 'nftables') {
      // iptables: every running port's chains from the live tables, with these lists' sets; only the
      // chains of ports whose lists changed differ, so only those are rewritten.
      if (!ctx.runner.which('ipset')) throw new VifGuardError('MISSING_TOOL', 'blocklists on the iptables backend need ipset (apt-get install ipset)');
      const incremental = await iptablesBlocklistsFromCache(ctx, saved, lists, dryRun);
      if (incremental) return incremental;
      const blocks = blockResolver(ctx.settings, lists);
      return applyIptables(ctx, dryRun, (filter4, filter6) => buildRuleset(livePorts(filter4, filter6).map((port) => guestPortOfLive(port, filter6)), ctx.settings, 'iptables', blocks), false);
    }
    // Only the ports whose lists changed: found from the records' guest names and blocklist digests.
    const incremental = await fromCache(ctx, dryRun, lists, (records) => {
      const affected = new Set<string>();
      for (const [ifname, comment] of records.entries()) {
        const fields = parsePortComment(comment);
        if (portListsDigest(lists, { ifname, guest: fields?.guest ?? '-' }) !== fields?.block) affected.add(ifname);
      }
      return { affected, desired: (live) => [...live.ports.values()].map(guestPortOf) };
    });
    return incremental ?? applyNftables(ctx, dryRun, (base) => base, false, lists, false);
  });
}

/** The running ports a blocklist target (a vif or a guest name) names, from this boot's cache or the kernel. */
export async function runningPortsOf(ctx: EngineContext, target: string): Promise<string[]> {
  const records = PortRecords.read(portCachePath(ctx.lockPath), bridgeSkeleton(ctx.settings, true).digest);
  if (records) return records.entries().flatMap(([ifname, comment]) => (ifname === target || comment.startsWith(`g=${target} `) ? [ifname] : []));
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
    if (!hasIptables(ctx.runner)) return applyNftables(ctx, dryRun, () => [], true);
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
