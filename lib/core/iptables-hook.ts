/*
 * Hooks, `block` and `unblock` on the iptables backend with this boot's cache: the restore payloads
 * come from the cached port names and rules digests, not from iptables-save, which reads every chain
 * (1.5 s with 4,000 guests). Each function returns undefined when the cache cannot be used; the
 * engine then reads the tables (engine.ts).
 */
import { iptablesVariant, type Settings } from '../config/settings.js';
import type { GuestPort } from '../guest/model.js';
import { createIptablesBackend, restoreFamilies, type Variant } from '../backend/iptables.js';
import type { LiveTable } from '../backend/save-parse.js';
import { planPortEvent, renderRestorePayload, type PortEventPlan, type TablePlan } from '../backend/diff.js';
import { iptablesCachePath, readIptablesCache } from '../backend/iptables-cache.js';
import { dropPortCache } from '../backend/bridge-cache.js';
import { createIpsets, destroyIpsets, ipsetsOfPort, listIpsets, referencedIpsets } from '../backend/ipset.js';
import { planEbtablesEvent, readEbtablesChain, restoreEbtables } from '../backend/ebtables.js';
import { ebLayoutDigest, ebPortChain } from '../rules/ebtables.js';
import { bridgeFromRecords, planBridge } from '../backend/nft-bridge.js';
import { blockedPort, buildPortChains, FILTER_JUMPS } from '../rules/build.js';
import { bridgeSkeleton, layer2Port } from '../rules/bridge.js';
import { portListsDigest, type Blocklist } from '../blocklist/store.js';
import { isGuarded, type PortIpsets } from '../rules/port.js';
import { FORWARD_CHAIN, portInChain, portOutChain } from '../rules/names.js';
import type { ChainSpec, Ruleset, TableSpec } from '../rules/types.js';
import { shortDigest } from '../digest.js';
import { renderRuleBody } from '../backend/render.js';
import { layer2Tool } from './choose.js';
import { livePorts, changed, touchedIn, guestPortOf, guestPortOfLive, blockResolver, commitMs, applyBridgeScript, type EngineContext, type ApplyReport, type PortChange } from './engine-base.js';

function tableAsLive(spec: TableSpec | undefined): LiveTable {
  return { table: 'filter', chains: new Map((spec?.chains ?? []).map((chain) => [chain.name, { policy: '-', rules: chain.rules.map(renderRuleBody), counters: [] }])) };
}

/** A port's chains in both families (matching on its blocklists' sets), and a digest of their rules (kept in the cache: an unchanged port is not rewritten). */
function portChainsOf(port: GuestPort, settings: Settings, sets?: PortIpsets): { 4: ChainSpec[]; 6: ChainSpec[]; digest: string } {
  const built = buildPortChains(port, settings, sets);
  const chains = { 4: [built[4].in, built[4].out], 6: [built[6].in, built[6].out] };
  return { ...chains, digest: chainsDigest([...chains[4], ...chains[6]]) };
}

function chainsDigest(chains: readonly ChainSpec[]): string {
  return shortDigest(chains.map((chain) => `${chain.name}\n${chain.rules.map(renderRuleBody).join('\n')}`).join('\n'));
}

/** Each guarded port's layer-2 record after an iptables commit, for the cache; undefined when nothing of vif-guard's is left. */
export function iptablesRecords(desired: Ruleset): [string, string][] | undefined {
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
export async function iptablesBlocklistsFromCache(ctx: EngineContext, saved: readonly Blocklist[], lists: readonly Blocklist[], dryRun: boolean): Promise<ApplyReport | undefined> {
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
export async function iptablesFromCache(ctx: EngineContext, change: PortChange, dryRun: boolean, lists: readonly Blocklist[], setsMayExist = lists.length > 0): Promise<ApplyReport | undefined> {
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
  const tables = restoreFamilies(variant, [() => restore(4), () => restore(6)]);
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
