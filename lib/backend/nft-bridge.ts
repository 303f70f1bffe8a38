import { createHash } from 'node:crypto';
import { VifGuardError } from '../errors.js';
import type { Runner } from '../runner.js';
import type { BridgeSpec } from '../rules/types.js';
import type { Counter } from './save-parse.js';

/*
 * vif-guard's nft table `bridge vif_guard`, owned whole:
 * - NOTRACK for switched guest traffic. It cannot live in iptables' raw table: br_netfilter turns
 *   PACKET_OTHERHOST into PACKET_HOST before the IPv4 PREROUTING hooks run, so raw PREROUTING cannot
 *   tell a frame the bridge switches from one dom0 routes or NATs (which must stay tracked).
 * - Layer-2 checks per guest port (MAC, ARP, ethertypes), reached by one `iifname vmap` lookup.
 * Chain names carry digests of their rules, so the state can be read from chain names, map and
 * set elements alone: listing rules makes nft fetch every rule of every chain.
 */
export const NFT_TABLE = 'vif_guard';

// The table's fixed part, written once: its digest names the base chains, so a vif-guard upgrade
// that changes it is seen from the chain names alone and rebuilds the table.
const SKELETON_TEMPLATE = [
  '  set ports { type ifname; }',
  '  set macs { type ether_addr; }',
  '  map guests { type ifname : verdict; }',
  '  chain prerouting_@ {',
  '    type filter hook prerouting priority -300; policy accept;',
  '    meta pkttype other iifname @ports notrack comment "vg:notrack-from-guest"',
  '    meta pkttype other ether daddr @macs notrack comment "vg:notrack-to-guest"',
  '  }',
  '  chain from_guest_@ {',
  '    type filter hook prerouting priority -290; policy accept;',
  '    iifname vmap @guests comment "vg:dispatch"',
  '  }',
];
const SKELETON_DIGEST = createHash('sha256').update(SKELETON_TEMPLATE.join('\n')).digest('hex').slice(0, 12);
export const PREROUTING = `prerouting_${SKELETON_DIGEST}`;
export const FROM_GUEST = `from_guest_${SKELETON_DIGEST}`;
const SKELETON = SKELETON_TEMPLATE.map((line) => line.replace(/_@ \{$/, `_${SKELETON_DIGEST} {`));

export interface LiveBridge {
  readonly exists: boolean;
  readonly skeletonCurrent: boolean;
  readonly ports: readonly string[];
  readonly macs: readonly string[];
  /** Guest chains (g_*) in the table. */
  readonly chains: ReadonlySet<string>;
  /** Map key (ifname) -> chain it jumps to. */
  readonly dispatch: ReadonlyMap<string, string>;
  /** Guest chain -> class -> counter of its drop rule (only from a full listing). */
  readonly counters: ReadonlyMap<string, Map<string, Counter>>;
}

export const ABSENT: LiveBridge = { exists: false, skeletonCurrent: false, ports: [], macs: [], chains: new Set(), dispatch: new Map(), counters: new Map() };

interface NftItem {
  set?: { name?: string; table?: string; elem?: unknown[] };
  map?: { name?: string; table?: string; elem?: unknown[] };
  chain?: { name?: string; table?: string };
  rule?: { chain?: string; table?: string; comment?: string; expr?: Array<{ counter?: { packets?: number; bytes?: number } }> };
}

/** Parse `nft -j` output: a full table listing, or the chains/map/sets listings a hook uses. */
export function parseBridgeJson(texts: readonly string[]): LiveBridge {
  const items = texts.flatMap((text) => (JSON.parse(text) as { nftables?: NftItem[] }).nftables ?? []);
  const ours = (table: string | undefined) => table === undefined || table === NFT_TABLE;
  const setElems = (name: string) =>
    items.flatMap((item) => (item.set?.name === name && ours(item.set.table) ? (item.set.elem ?? []) : [])).filter((elem): elem is string => typeof elem === 'string');
  const names = new Set(items.flatMap((item) => (item.chain?.name && ours(item.chain.table) ? [item.chain.name] : [])));
  const counters = new Map<string, Map<string, Counter>>();
  for (const item of items) {
    const rule = item.rule;
    if (!rule?.chain?.startsWith('g_') || !ours(rule.table)) continue;
    const counter = rule.expr?.find((expr) => expr.counter)?.counter;
    const cls = /^vg:([a-z0-9-]+)$/.exec(rule.comment ?? '')?.[1];
    if (!counter || !cls) continue;
    const perChain = counters.get(rule.chain) ?? new Map<string, Counter>();
    perChain.set(cls, { packets: counter.packets ?? 0, bytes: counter.bytes ?? 0 });
    counters.set(rule.chain, perChain);
  }
  const dispatch = new Map<string, string>();
  for (const item of items) {
    if (item.map?.name !== 'guests' || !ours(item.map.table)) continue;
    for (const elem of item.map.elem ?? []) {
      // [ "vif1.0", { "jump": { "target": "g_vif1.0_..." } } ]
      if (Array.isArray(elem) && typeof elem[0] === 'string') {
        const target = (elem[1] as { jump?: { target?: string } } | undefined)?.jump?.target;
        if (target) dispatch.set(elem[0], target);
      }
    }
  }
  return {
    exists: names.size > 0 || items.some((item) => item.map?.name === 'guests'),
    skeletonCurrent: names.has(PREROUTING) && names.has(FROM_GUEST),
    ports: setElems('ports'),
    macs: setElems('macs'),
    chains: new Set([...names].filter((name) => name.startsWith('g_'))),
    dispatch,
    counters,
  };
}

const quote = (value: string) => `"${value}"`;

function fullTable(desired: BridgeSpec): string {
  const lines = [`table bridge ${NFT_TABLE} {`, ...SKELETON];
  for (const guest of desired.guests) lines.push(`  chain ${guest.chain} {`, ...guest.rules.map((rule) => `    ${rule}`), '  }');
  lines.push('}');
  if (desired.notrack?.ports.length) lines.push(`add element bridge ${NFT_TABLE} ports { ${desired.notrack.ports.map(quote).join(', ')} }`);
  if (desired.notrack?.macs.length) lines.push(`add element bridge ${NFT_TABLE} macs { ${desired.notrack.macs.join(', ')} }`);
  if (desired.guests.length) lines.push(`add element bridge ${NFT_TABLE} guests { ${desired.guests.map((g) => `${quote(g.ifname)} : jump ${g.chain}`).join(', ')} }`);
  return lines.join('\n');
}

/**
 * The nft script (one atomic transaction) that turns live into desired; empty when nothing changes.
 * A guest whose rules change gets a new chain and its map element is repointed in the same
 * transaction; unchanged chains are not touched, so their counters survive.
 */
export function planBridge(live: LiveBridge, desired: BridgeSpec | undefined): string {
  if (!desired) return live.exists ? `delete table bridge ${NFT_TABLE}\n` : '';
  if (!live.exists || !live.skeletonCurrent) {
    return `table bridge ${NFT_TABLE} {}\ndelete table bridge ${NFT_TABLE}\n${fullTable(desired)}\n`;
  }
  const lines: string[] = [];
  const wanted = new Map(desired.guests.map((guest) => [guest.ifname, guest]));
  const wantedChains = new Set(desired.guests.map((guest) => guest.chain));
  for (const guest of desired.guests) {
    if (live.chains.has(guest.chain)) continue;
    lines.push(`add chain bridge ${NFT_TABLE} ${guest.chain}`, ...guest.rules.map((rule) => `add rule bridge ${NFT_TABLE} ${guest.chain} ${rule}`));
  }
  for (const [ifname, target] of live.dispatch) {
    if (wanted.get(ifname)?.chain !== target) lines.push(`delete element bridge ${NFT_TABLE} guests { ${quote(ifname)} }`);
  }
  for (const guest of desired.guests) {
    if (live.dispatch.get(guest.ifname) !== guest.chain) lines.push(`add element bridge ${NFT_TABLE} guests { ${quote(guest.ifname)} : jump ${guest.chain} }`);
  }
  for (const chain of live.chains) if (!wantedChains.has(chain)) lines.push(`flush chain bridge ${NFT_TABLE} ${chain}`, `delete chain bridge ${NFT_TABLE} ${chain}`);
  const setDiff = (set: 'ports' | 'macs', have: readonly string[], want: readonly string[], q: (v: string) => string) => {
    // Sets, not Array.includes: with thousands of guests that was 64 million comparisons per hook.
    const [haveSet, wantSet] = [new Set(have), new Set(want)];
    const removed = have.filter((value) => !wantSet.has(value));
    const added = want.filter((value) => !haveSet.has(value));
    if (removed.length) lines.push(`delete element bridge ${NFT_TABLE} ${set} { ${removed.map(q).join(', ')} }`);
    if (added.length) lines.push(`add element bridge ${NFT_TABLE} ${set} { ${added.map(q).join(', ')} }`);
  };
  setDiff('ports', live.ports, desired.notrack?.ports ?? [], quote);
  setDiff('macs', live.macs, desired.notrack?.macs ?? [], (mac) => mac);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * The live table. `full` lists every rule (for counters: status, doctor); otherwise only chain
 * names, the map and the sets, which is what a hook needs and stays fast with thousands of guests.
 */
export async function readBridge(runner: Runner, full = false): Promise<LiveBridge> {
  const lists = full
    ? [['list', 'table', 'bridge', NFT_TABLE]]
    : [['list', 'chains', 'bridge'], ['list', 'map', 'bridge', NFT_TABLE, 'guests'], ['list', 'set', 'bridge', NFT_TABLE, 'ports'], ['list', 'set', 'bridge', NFT_TABLE, 'macs']];
  const texts: string[] = [];
  for (const args of lists) {
    const result = await runner.run('nft', ['-j', ...args]);
    if (result.exitCode !== 0) {
      if (/No such file or directory/.test(result.stderr)) return ABSENT;
      throw new VifGuardError('APPLY', `nft ${args.join(' ')} failed: ${result.stderr.trim().split('\n')[0] ?? ''}`);
    }
    texts.push(result.stdout);
  }
  return parseBridgeJson(texts);
}

export async function applyBridge(runner: Runner, script: string, timeoutSeconds = 30): Promise<void> {
  if (script === '') return;
  const result = await runner.run('nft', ['-f', '-'], { input: script, timeout: timeoutSeconds * 1000 });
  if (result.exitCode !== 0) {
    const first = result.timedOut
      ? `timed out after ${timeoutSeconds}s (${script.split('\n').length} lines)`
      : result.stderr.split('\n').find((line) => line.includes('Error')) ?? result.stderr.trim();
    throw new VifGuardError('APPLY', `nft -f failed: ${first}`, { details: `${result.stderr}\n${script}` });
  }
}
