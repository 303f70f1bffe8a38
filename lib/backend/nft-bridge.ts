import { createHash } from 'node:crypto';
import { VifGuardError } from '../errors.js';
import type { Runner } from '../runner.js';
import type { BridgeSpec } from '../rules/types.js';
import { l2Chain } from '../rules/l2.js';
import type { Counter } from './save-parse.js';

/*
 * vif-guard's nft table `bridge vif_guard`, owned whole:
 * - NOTRACK for switched guest traffic. It cannot live in iptables' raw table: br_netfilter turns
 *   PACKET_OTHERHOST into PACKET_HOST before the IPv4 PREROUTING hooks run, so raw PREROUTING cannot
 *   tell a frame the bridge switches from one dom0 routes or NATs (which must stay tracked).
 * - Layer-2 checks per guest port (MAC, ARP, ethertypes), reached by one `iifname vmap` lookup.
 */
export const NFT_TABLE = 'vif_guard';

function skeleton(): string[] {
  return [
    '  set ports { type ifname; }',
    '  set macs { type ether_addr; }',
    '  map guests { type ifname : verdict; }',
    '  chain prerouting {',
    '    type filter hook prerouting priority -300; policy accept;',
    '    meta pkttype other iifname @ports notrack comment "vg:notrack-from-guest#SKEL"',
    '    meta pkttype other ether daddr @macs notrack comment "vg:notrack-to-guest#SKEL"',
    '  }',
    '  chain from_guest {',
    '    type filter hook prerouting priority -290; policy accept;',
    '    iifname vmap @guests comment "vg:dispatch#SKEL"',
    '  }',
  ];
}

/** A digest of the skeleton, so a vif-guard upgrade that changes it rebuilds the table. */
const SKELETON_DIGEST = createHash('sha256').update(skeleton().join('\n')).digest('hex').slice(0, 12);
const SKELETON = skeleton().map((line) => line.replace('#SKEL', `#${SKELETON_DIGEST}`));
const SKELETON_RULES = SKELETON.filter((line) => line.includes('comment "vg:')).length;

export interface LiveBridge {
  readonly exists: boolean;
  readonly skeletonCurrent: boolean;
  readonly ports: readonly string[];
  readonly macs: readonly string[];
  /** Guest chain name -> the comments of its rules, in order. */
  readonly chains: ReadonlyMap<string, string[]>;
  /** Map key (ifname) -> chain it jumps to. */
  readonly dispatch: ReadonlyMap<string, string>;
  /** Guest chain name -> class -> counter of its drop rule. */
  readonly counters: ReadonlyMap<string, Map<string, Counter>>;
}

export const ABSENT: LiveBridge = { exists: false, skeletonCurrent: false, ports: [], macs: [], chains: new Map(), dispatch: new Map(), counters: new Map() };

interface NftItem {
  set?: { name?: string; type?: string; elem?: unknown[] };
  map?: { name?: string; elem?: unknown[] };
  chain?: { name?: string };
  rule?: { chain?: string; comment?: string; expr?: Array<{ counter?: { packets?: number; bytes?: number } }> };
}

/** Parse `nft -j list table bridge vif_guard`. */
export function parseBridgeJson(text: string): LiveBridge {
  const items = ((JSON.parse(text) as { nftables?: NftItem[] }).nftables ?? []);
  const setElems = (name: string) =>
    items.flatMap((item) => (item.set?.name === name ? (item.set.elem ?? []) : [])).filter((elem): elem is string => typeof elem === 'string');
  const chains = new Map<string, string[]>();
  const counters = new Map<string, Map<string, Counter>>();
  const skeletonComments: string[] = [];
  for (const item of items) {
    if (item.chain?.name?.startsWith('g_')) chains.set(item.chain.name, chains.get(item.chain.name) ?? []);
    const rule = item.rule;
    if (!rule?.chain) continue;
    const comment = rule.comment ?? '';
    if (!rule.chain.startsWith('g_')) {
      skeletonComments.push(comment);
      continue;
    }
    chains.set(rule.chain, [...(chains.get(rule.chain) ?? []), comment]);
    const counter = rule.expr?.find((expr) => expr.counter)?.counter;
    const cls = /^vg:([a-z0-9-]+)#/.exec(comment)?.[1];
    if (counter && cls) {
      const perChain = counters.get(rule.chain) ?? new Map<string, Counter>();
      perChain.set(cls, { packets: counter.packets ?? 0, bytes: counter.bytes ?? 0 });
      counters.set(rule.chain, perChain);
    }
  }
  const dispatch = new Map<string, string>();
  for (const item of items) {
    if (item.map?.name !== 'guests') continue;
    for (const elem of item.map.elem ?? []) {
      // [ "vif1.0", { "jump": { "target": "g_vif1.0" } } ]
      if (Array.isArray(elem) && typeof elem[0] === 'string') {
        const target = (elem[1] as { jump?: { target?: string } } | undefined)?.jump?.target;
        if (target) dispatch.set(elem[0], target);
      }
    }
  }
  return {
    exists: true,
    skeletonCurrent: skeletonComments.length === SKELETON_RULES && skeletonComments.every((comment) => comment.endsWith(`#${SKELETON_DIGEST}`)),
    ports: setElems('ports'),
    macs: setElems('macs'),
    chains,
    dispatch,
    counters,
  };
}

const quote = (value: string) => `"${value}"`;
const digestOf = (rules: readonly string[]) => rules.map((rule) => /comment "([^"]*)"$/.exec(rule)?.[1] ?? '');

function fullTable(desired: BridgeSpec): string {
  const lines = [`table bridge ${NFT_TABLE} {`, ...SKELETON];
  for (const guest of desired.guests) lines.push(`  chain ${l2Chain(guest.ifname)} {`, ...guest.rules.map((rule) => `    ${rule}`), '  }');
  lines.push('}');
  const elements: string[] = [];
  if (desired.notrack?.ports.length) elements.push(`add element bridge ${NFT_TABLE} ports { ${desired.notrack.ports.map(quote).join(', ')} }`);
  if (desired.notrack?.macs.length) elements.push(`add element bridge ${NFT_TABLE} macs { ${desired.notrack.macs.join(', ')} }`);
  if (desired.guests.length) elements.push(`add element bridge ${NFT_TABLE} guests { ${desired.guests.map((g) => `${quote(g.ifname)} : jump ${l2Chain(g.ifname)}`).join(', ')} }`);
  return [...lines, ...elements].join('\n');
}

/**
 * The nft script (one atomic transaction) that turns live into desired; empty when nothing changes.
 * Unchanged guest chains are not touched, so their counters survive.
 */
export function planBridge(live: LiveBridge, desired: BridgeSpec | undefined): string {
  if (!desired) return live.exists ? `delete table bridge ${NFT_TABLE}\n` : '';
  if (!live.exists || !live.skeletonCurrent) {
    return `table bridge ${NFT_TABLE} {}\ndelete table bridge ${NFT_TABLE}\n${fullTable(desired)}\n`;
  }
  const lines: string[] = [];
  const wanted = new Map(desired.guests.map((guest) => [l2Chain(guest.ifname), guest]));
  // Removals first: dispatch elements, then the chains they pointed to.
  for (const [ifname, target] of live.dispatch) {
    if (!wanted.has(target) || wanted.get(target)?.ifname !== ifname) lines.push(`delete element bridge ${NFT_TABLE} guests { ${quote(ifname)} }`);
  }
  for (const chain of live.chains.keys()) if (!wanted.has(chain)) lines.push(`flush chain bridge ${NFT_TABLE} ${chain}`, `delete chain bridge ${NFT_TABLE} ${chain}`);
  for (const [chain, guest] of wanted) {
    const have = live.chains.get(chain);
    const want = digestOf(guest.rules);
    if (have && have.length === want.length && have.every((comment, i) => comment === want[i])) {
      if (live.dispatch.get(guest.ifname) !== chain) lines.push(`add element bridge ${NFT_TABLE} guests { ${quote(guest.ifname)} : jump ${chain} }`);
      continue;
    }
    lines.push(have ? `flush chain bridge ${NFT_TABLE} ${chain}` : `add chain bridge ${NFT_TABLE} ${chain}`);
    for (const rule of guest.rules) lines.push(`add rule bridge ${NFT_TABLE} ${chain} ${rule}`);
    if (live.dispatch.get(guest.ifname) !== chain) lines.push(`add element bridge ${NFT_TABLE} guests { ${quote(guest.ifname)} : jump ${chain} }`);
  }
  const setDiff = (set: 'ports' | 'macs', have: readonly string[], want: readonly string[], q: (v: string) => string) => {
    const removed = have.filter((value) => !want.includes(value));
    const added = want.filter((value) => !have.includes(value));
    if (removed.length) lines.push(`delete element bridge ${NFT_TABLE} ${set} { ${removed.map(q).join(', ')} }`);
    if (added.length) lines.push(`add element bridge ${NFT_TABLE} ${set} { ${added.map(q).join(', ')} }`);
  };
  setDiff('ports', live.ports, desired.notrack?.ports ?? [], quote);
  setDiff('macs', live.macs, desired.notrack?.macs ?? [], (mac) => mac);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

export async function readBridge(runner: Runner): Promise<LiveBridge> {
  const result = await runner.run('nft', ['-j', 'list', 'table', 'bridge', NFT_TABLE]);
  if (result.exitCode !== 0) {
    if (/No such file or directory/.test(result.stderr)) return ABSENT;
    throw new VifGuardError('APPLY', `nft list table bridge ${NFT_TABLE} failed: ${result.stderr.trim().split('\n')[0] ?? ''}`);
  }
  return parseBridgeJson(result.stdout);
}

export async function applyBridge(runner: Runner, script: string): Promise<void> {
  if (script === '') return;
  const result = await runner.run('nft', ['-f', '-'], { input: script });
  if (result.exitCode !== 0) {
    const first = result.stderr.split('\n').find((line) => line.includes('Error')) ?? result.stderr.trim();
    throw new VifGuardError('APPLY', `nft -f failed: ${first}`, { details: `${result.stderr}\n${script}` });
  }
}
