/*
 * What the engine's paths share: the context and report types, the port an event names, and the
 * ports read back from what vif-guard installed (iptables chains, the bridge table's elements).
 */
import type { Settings } from '../config/settings.js';
import type { GuestPort } from '../guest/model.js';
import { parseAddress, type GuestAddress } from '../guest/validate.js';
import type { Runner } from '../runner.js';
import type { LiveTable } from '../backend/save-parse.js';
import type { TablePlan } from '../backend/diff.js';
import type { PortRecords } from '../backend/bridge-cache.js';
import { applyBridge, type LiveBridgePort } from '../backend/nft-bridge.js';
import type { Engine, PortChains } from '../rules/build.js';
import { bridgeBlock } from '../rules/bridge.js';
import { blocksFor, listsDigest, listsFor, type Blocklist } from '../blocklist/store.js';
import { linkLocalFromMac } from '../guest/eui64.js';
import { portMetaOfRules } from '../rules/port.js';
import { portInChain, portOfChain, portOutChain } from '../rules/names.js';
import type { BridgeBlock, Rule } from '../rules/types.js';

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
  /** sync: the memo matched (nothing parsed, nothing to do); what the sync that kept it reported. */
  readonly memo?: unknown;
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
export function changed(change: PortChange): { readonly ifname: string; readonly key: string | undefined; readonly touches: (port: { ifname: string; key?: string | undefined }) => boolean } {
  const ifname = change.kind === 'up' ? change.port.ifname : change.ifname;
  const key = change.kind === 'up' ? change.port.key : change.key;
  return { ifname, key, touches: (port) => port.ifname === ifname || (key !== undefined && port.key === key) };
}

/** The same, among a cache's records: the port's name and any recorded under its key. */
export function touchedIn(change: PortChange, records: PortRecords): Set<string> {
  const { ifname, key } = changed(change);
  return new Set([ifname, ...(key === undefined ? [] : records.withKey(key))]);
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

export function guestPortOfLive(port: LivePort, filter6: LiveTable): GuestPort {
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

/** Hooks must finish inside libxl's 40 s; sync and uninstall may rewrite thousands of chains and get longer. */
export const BULK_SECONDS = 300;

/** How long one commit may take: a hook's fits inside libxl's 40 s, sync's and uninstall's may rewrite thousands of chains. */
export function commitMs(ctx: EngineContext, bulk: boolean): number {
  return (bulk ? BULK_SECONDS : ctx.settings.lockTimeout + 10) * 1000;
}

export async function applyBridgeScript(ctx: EngineContext, script: string, dryRun: boolean, bulk: boolean): Promise<void> {
  if (script === '') return;
  if (dryRun) ctx.log(`nft -f:\n${script.trimEnd()}`);
  else await applyBridge(ctx.runner, script, commitMs(ctx, bulk) / 1000);
}
