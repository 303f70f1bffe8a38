import { VifGuardError } from '../errors.js';
import type { Runner } from '../runner.js';

/*
 * NOTRACK for switched guest traffic lives in a bridge-family nft table that vif-guard owns whole.
 * It cannot live in iptables' raw table: br_netfilter turns PACKET_OTHERHOST into PACKET_HOST before
 * the IPv4 PREROUTING hooks run, so raw PREROUTING cannot tell a frame the bridge switches from one
 * dom0 routes or NATs (which must stay tracked). Bridge prerouting still sees the real packet type.
 */
export const NFT_TABLE = 'vif_guard';
const RULE_TAGS = ['vif-guard:notrack-from-guest', 'vif-guard:notrack-to-guest'] as const;

export interface NotrackState {
  /** Guarded ports: frames they send that the bridge switches are not tracked. */
  readonly ports: readonly string[];
  /** Their guests' MACs: frames switched to them are not tracked. */
  readonly macs: readonly string[];
}

export interface LiveNotrack extends NotrackState {
  readonly exists: boolean;
  readonly rulesCurrent: boolean;
}

interface NftJson {
  nftables?: Array<{ set?: { name?: string; elem?: unknown[] }; rule?: { chain?: string; comment?: string } }>;
}

/** Parse `nft -j list table bridge vif_guard`. */
export function parseNotrackJson(text: string): LiveNotrack {
  const data = JSON.parse(text) as NftJson;
  const items = data.nftables ?? [];
  const setElems = (name: string) =>
    items.flatMap((item) => (item.set?.name === name ? (item.set.elem ?? []) : [])).filter((elem): elem is string => typeof elem === 'string');
  const comments = items.flatMap((item) => (item.rule ? [item.rule.comment ?? ''] : []));
  return {
    exists: true,
    ports: setElems('ports'),
    macs: setElems('macs'),
    rulesCurrent: comments.length === RULE_TAGS.length && comments.every((comment, i) => comment === RULE_TAGS[i]),
  };
}

const quotePort = (port: string) => `"${port}"`;

/** The whole table, for when it is missing or its rules are not the current ones. */
export function renderNotrackTable(state: NotrackState): string {
  const elements = (values: readonly string[]) => (values.length ? ` elements = { ${values.join(', ')} };` : '');
  return [
    `table bridge ${NFT_TABLE} {`,
    `  set ports { type ifname;${elements(state.ports.map(quotePort))} }`,
    `  set macs { type ether_addr;${elements(state.macs)} }`,
    '  chain prerouting {',
    '    type filter hook prerouting priority -300; policy accept;',
    `    meta pkttype other iifname @ports notrack comment "${RULE_TAGS[0]}"`,
    `    meta pkttype other ether daddr @macs notrack comment "${RULE_TAGS[1]}"`,
    '  }',
    '}',
  ].join('\n');
}

/** The nft script that turns live into desired (empty when nothing changes); undefined desired removes the table. */
export function planNotrack(live: LiveNotrack, desired: NotrackState | undefined): string {
  if (!desired) return live.exists ? `delete table bridge ${NFT_TABLE}\n` : '';
  if (!live.exists || !live.rulesCurrent) {
    // "table x {}" first so the delete never fails; all three lines are one nft transaction.
    return `table bridge ${NFT_TABLE} {}\ndelete table bridge ${NFT_TABLE}\n${renderNotrackTable(desired)}\n`;
  }
  const lines: string[] = [];
  const diff = (set: 'ports' | 'macs', have: readonly string[], want: readonly string[], quote: (v: string) => string) => {
    const added = want.filter((value) => !have.includes(value));
    const removed = have.filter((value) => !want.includes(value));
    if (removed.length) lines.push(`delete element bridge ${NFT_TABLE} ${set} { ${removed.map(quote).join(', ')} }`);
    if (added.length) lines.push(`add element bridge ${NFT_TABLE} ${set} { ${added.map(quote).join(', ')} }`);
  };
  diff('ports', live.ports, desired.ports, quotePort);
  diff('macs', live.macs, desired.macs, (mac) => mac);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

export async function readNotrack(runner: Runner): Promise<LiveNotrack> {
  const result = await runner.run('nft', ['-j', 'list', 'table', 'bridge', NFT_TABLE]);
  if (result.exitCode !== 0) {
    if (/No such file or directory/.test(result.stderr)) return { exists: false, ports: [], macs: [], rulesCurrent: false };
    throw new VifGuardError('APPLY', `nft list table bridge ${NFT_TABLE} failed: ${result.stderr.trim().split('\n')[0] ?? ''}`);
  }
  return parseNotrackJson(result.stdout);
}

export async function applyNotrack(runner: Runner, script: string): Promise<void> {
  if (script === '') return;
  const result = await runner.run('nft', ['-f', '-'], { input: script });
  if (result.exitCode !== 0) {
    throw new VifGuardError('APPLY', `nft -f failed: ${result.stderr.trim().split('\n').find((line) => line.includes('Error')) ?? result.stderr.trim()}`, {
      details: `${result.stderr}\n${script}`,
    });
  }
}
