import { existsSync, rmSync } from 'node:fs';
import { writeAtomic } from '../files.js';
import type { Runner } from '../runner.js';
import { VifGuardError } from '../errors.js';
import type { Counter } from './save-parse.js';
import { EB_JUMP, EB_TABLE, isEbChain, isEbPortChain, portOfEbChain, renderEbRules, type EbChain, type EbClass } from '../rules/ebtables.js';

/*
 * vif-guard's chains in ebtables' nat table (rules/ebtables.ts), read with `ebtables -L --Lc` and
 * changed in one `ebtables-restore --noflush` (one table replacement on legacy ebtables, one
 * transaction on ebtables-nft). Nothing else in the table is written: foreign chains and rules stay.
 */

export interface LiveEbChain {
  readonly policy: string;
  /** Rule bodies as ebtables prints them, counters stripped. */
  readonly rules: readonly string[];
  readonly counters: readonly Counter[];
}

export type LiveEbtables = ReadonlyMap<string, LiveEbChain>;

const CHAIN_HEADER = /^Bridge chain: (\S+), entries: \d+, policy: (\S+)$/;
const COUNTERS = /^(.*?) , pcnt = (\d+) -- bcnt = (\d+)$/;

/** `ebtables -t nat -L --Lc` (or without --Lc) as chains of rule bodies. */
export function parseEbtablesList(text: string): Map<string, LiveEbChain> {
  const chains = new Map<string, LiveEbChain>();
  let current: { policy: string; rules: string[]; counters: Counter[] } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    const header = CHAIN_HEADER.exec(line);
    if (header) {
      current = { policy: header[2] ?? '', rules: [], counters: [] };
      chains.set(header[1] ?? '', current);
      continue;
    }
    if (line === '' || line.startsWith('Bridge table:') || !current) continue;
    const counted = COUNTERS.exec(line);
    current.rules.push((counted?.[1] ?? line).trim());
    current.counters.push({ packets: Number(counted?.[2] ?? 0), bytes: Number(counted?.[3] ?? 0) });
  }
  return chains;
}

const JUMP = EB_JUMP.join(' ');

/**
 * ebtables-restore lines taking the nat table from `live` to `desired` (vif-guard's chains only; empty
 * desired removes them all). Chains are created before anything jumps to them and deleted after
 * nothing does; a port chain whose name (its rules' digest) and length match is kept with its counters.
 */
export function planEbtables(live: LiveEbtables, desired: readonly EbChain[]): string[] {
  const wanted = new Set(desired.map((chain) => chain.name));
  const create: string[] = [];
  const fill: string[] = [];
  for (const chain of desired) {
    const rules = renderEbRules(chain.rules);
    const current = live.get(chain.name);
    if (!current) create.push(`-N ${chain.name} -P RETURN`);
    else {
      const same = isEbPortChain(chain.name) ? current.rules.length === rules.length : current.rules.join('\n') === rules.join('\n');
      if (same && current.policy === 'RETURN') continue;
      fill.push(`-F ${chain.name}`);
      if (current.policy !== 'RETURN') fill.push(`-P ${chain.name} RETURN`);
    }
    fill.push(...rules.map((rule) => `-A ${chain.name} ${rule}`));
  }
  // The jump comes first in PREROUTING, once: a foreign ACCEPT above it would let forged frames through.
  const prerouting = live.get('PREROUTING')?.rules ?? [];
  const jumps = prerouting.filter((rule) => rule === JUMP).length;
  const onTop = jumps === 1 && prerouting[0] === JUMP;
  const hook = desired.length > 0 && onTop ? [] : [...Array.from({ length: jumps }, () => `-D PREROUTING ${JUMP}`), ...(desired.length > 0 ? [`-I PREROUTING 1 ${JUMP}`] : [])];
  const gone = [...live.keys()].filter((name) => isEbChain(name) && !wanted.has(name));
  return [...create, ...fill, ...hook, ...gone.map((name) => `-F ${name}`), ...gone.map((name) => `-X ${name}`)];
}

/** Drops per port and class, from the port chains' DROP rules (each class has one). */
export function ebtablesCounters(live: LiveEbtables): Map<string, Map<EbClass, Counter>> {
  const counts = new Map<string, Map<EbClass, Counter>>();
  for (const [name, chain] of live) {
    const ifname = portOfEbChain(name);
    if (ifname === undefined) continue;
    const classes = new Map<EbClass, Counter>();
    chain.rules.forEach((rule, i) => {
      const cls = dropClassOf(rule);
      if (cls) classes.set(cls, chain.counters[i] ?? { packets: 0, bytes: 0 });
    });
    counts.set(ifname, classes);
  }
  return counts;
}

function dropClassOf(rule: string): EbClass | undefined {
  if (!rule.endsWith('-j DROP')) return undefined;
  if (rule === '-j DROP') return 'ethertype';
  if (rule.includes('--arp-mac-src')) return 'arp_mac';
  if (/^-p (ARP|0x0?806) -j DROP$/i.test(rule)) return 'arp_ip';
  if (rule.startsWith('-s ! ') || rule.startsWith('! -s ')) return 'mac';
  return undefined;
}

/** Whether the chains are as desired: each desired chain there (port chains by name and length), the jump on top, nothing stale. */
export function ebtablesCurrent(live: LiveEbtables, desired: readonly EbChain[]): boolean {
  return planEbtables(live, desired).length === 0;
}

export interface EbtablesTarget {
  readonly runner: Runner;
  /** Kept beside the lock while vif-guard has chains in ebtables: only then is ebtables read on removal. */
  readonly marker: string;
  readonly timeoutMs: number;
  readonly log: (line: string) => void;
}

/** The nat table as it is, or why it cannot be read. */
export async function readEbtables(runner: Runner, counters = false): Promise<{ live: Map<string, LiveEbChain> } | { error: string }> {
  if (!runner.which('ebtables')) return { error: 'ebtables is not installed' };
  const listed = await runner.run('ebtables', ['-t', EB_TABLE, '-L', ...(counters ? ['--Lc'] : [])], { timeout: 30_000 });
  if (listed.exitCode !== 0) return { error: (listed.stderr.trim().split('\n')[0] ?? '') || `ebtables exited ${listed.exitCode}` };
  return { live: parseEbtablesList(listed.stdout) };
}

/**
 * Make vif-guard's ebtables chains these (none: remove them). Reads the table only when chains are
 * wanted or this boot's marker says some were written. Returns the payload sent ('' for nothing).
 */
export async function applyEbtables(target: EbtablesTarget, desired: readonly EbChain[], dryRun: boolean): Promise<string> {
  const wanted = desired.length > 0;
  if (!wanted && !existsSync(target.marker)) return '';
  const read = await readEbtables(target.runner);
  if ('error' in read) {
    if (!wanted) return '';
    throw new VifGuardError('APPLY', `ebtables cannot read its nat table (${read.error}): MAC, ARP and ethertype checks need ebtables with the ebtable_nat module (apt-get install ebtables; modprobe ebtable_nat), or layer2 = no in vif-guard.conf`);
  }
  const lines = planEbtables(read.live, desired);
  const payload = lines.length ? `*${EB_TABLE}\n${lines.join('\n')}\n` : '';
  if (dryRun) {
    if (payload) target.log(`ebtables-restore --noflush:\n${payload.trimEnd()}`);
    return payload;
  }
  if (payload) {
    if (!target.runner.which('ebtables-restore')) throw new VifGuardError('MISSING_TOOL', 'ebtables-restore is not installed (apt-get install ebtables)');
    const result = await target.runner.run('ebtables-restore', ['--noflush'], { input: payload, timeout: target.timeoutMs });
    if (result.exitCode !== 0 || result.timedOut) {
      const why = result.timedOut ? 'timed out' : result.stderr.trim().split('\n')[0] ?? `exit ${result.exitCode}`;
      throw new VifGuardError('APPLY', `ebtables-restore failed: ${why}`, { details: `${result.stderr.trim()}\npayload:\n${payload}` });
    }
  }
  if (wanted) writeAtomic(target.marker, 'vif-guard has chains in ebtables nat\n');
  else rmSync(target.marker, { force: true });
  return payload;
}
