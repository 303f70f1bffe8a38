import { existsSync, rmSync } from 'node:fs';
import { writeAtomic } from '../files.js';
import type { Runner } from '../runner.js';
import { VifGuardError } from '../errors.js';
import type { Counter } from './save-parse.js';
import { dispatchTree, type DispatchEntry } from '../rules/dispatch.js';
import { EB_JUMP, EB_TABLE, ebDispatchChain, ebDispatchRule, isEbChain, isEbPortChain, portOfEbChain, renderEbRules, type EbChain, type EbClass } from '../rules/ebtables.js';

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
  const gone = [...live.keys()].filter((name) => isEbChain(name) && !wanted.has(name));
  return [...create, ...fill, ...jumpLines(live.get('PREROUTING')?.rules ?? [], desired.length > 0), ...removal(gone)];
}

/** PREROUTING's jump first, once, while vif-guard has chains (a foreign ACCEPT above it would let forged frames through); none without. */
function jumpLines(prerouting: readonly string[], wanted: boolean): string[] {
  const jumps = prerouting.filter((rule) => rule === JUMP).length;
  if (wanted && jumps === 1 && prerouting[0] === JUMP) return [];
  return [...Array.from({ length: jumps }, () => `-D PREROUTING ${JUMP}`), ...(wanted ? [`-I PREROUTING 1 ${JUMP}`] : [])];
}

/** Chains to delete, last: every one flushed before any is deleted, as they may jump to each other. */
function removal(gone: readonly string[]): string[] {
  return [...gone.map((name) => `-F ${name}`), ...gone.map((name) => `-X ${name}`)];
}

export interface EbtablesEvent {
  /** Guarded port names before and after the event (a hook's cache). */
  readonly before: readonly string[];
  readonly after: readonly string[];
  /** The port the event is about: its chain before (undefined: it had none) and after (undefined: it goes). */
  readonly target: string;
  readonly oldChain: string | undefined;
  readonly newChain: EbChain | undefined;
  /** Every other port's chain name (from its cached record); undefined when the record cannot say. */
  readonly chainOf: (ifname: string) => string | undefined;
  /** PREROUTING's rules as they are (one chain's read). */
  readonly prerouting: readonly string[];
}

/**
 * A hook's ebtables lines from the cached port names alone: the target's chain, the dispatch chains
 * on its path, the jump. The table is not read, so the payload itself proves the cache right: -N
 * fails on a chain that exists, -F and -X on one that does not, and any failure aborts the restore
 * (the caller then reads the table). undefined when a needed record is missing.
 */
export function planEbtablesEvent(event: EbtablesEvent): string[] | undefined {
  const { before, after, target, oldChain, newChain } = event;
  const nameBefore = (ifname: string) => (ifname === target ? oldChain : event.chainOf(ifname));
  const nameAfter = (ifname: string) => (ifname === target ? newChain?.name : event.chainOf(ifname));
  const render = (entries: readonly DispatchEntry[], nameOf: (ifname: string) => string | undefined): string[] | undefined => {
    const rules: string[] = [];
    for (const entry of entries) {
      const chain = 'port' in entry ? nameOf(entry.port) : undefined;
      if ('port' in entry && chain === undefined) return undefined;
      rules.push(renderEbRules([ebDispatchRule(entry, chain ?? '')])[0] ?? '');
    }
    return rules;
  };
  const [treeBefore, treeAfter] = [before.length ? dispatchTree(before) : new Map<string, DispatchEntry[]>(), after.length ? dispatchTree(after) : new Map<string, DispatchEntry[]>()];
  const create: string[] = [];
  const fill: string[] = [];
  if (newChain && newChain.name !== oldChain) {
    create.push(`-N ${newChain.name} -P RETURN`);
    fill.push(...renderEbRules(newChain.rules).map((rule) => `-A ${newChain.name} ${rule}`));
  }
  for (const [prefix, entries] of treeAfter) {
    const name = ebDispatchChain(prefix);
    const was = treeBefore.get(prefix);
    // Only chains whose rules change are rendered and sent: those on the target's path. Rendering
    // names a port's chain from its record, which costs: never for the thousands of other chains.
    const touches = (list: readonly DispatchEntry[]) => list.some((entry) => 'port' in entry && entry.port === target);
    if (was !== undefined && !touches(was) && !touches(entries) && sameEntries(was, entries)) continue;
    const rules = render(entries, nameAfter);
    if (!rules) return undefined;
    if (was === undefined) create.push(`-N ${name} -P RETURN`);
    else {
      const previous = render(was, nameBefore);
      if (!previous) return undefined;
      if (previous.join('\n') === rules.join('\n')) continue;
      fill.push(`-F ${name}`);
    }
    fill.push(...rules.map((rule) => `-A ${name} ${rule}`));
  }
  const gone = [...treeBefore.keys()].filter((prefix) => !treeAfter.has(prefix)).map(ebDispatchChain);
  if (oldChain && oldChain !== newChain?.name) gone.push(oldChain);
  return [...create, ...fill, ...jumpLines(event.prerouting, after.length > 0), ...removal(gone)];
}

function sameEntries(a: readonly DispatchEntry[], b: readonly DispatchEntry[]): boolean {
  return a.length === b.length && a.every((entry, i) => {
    const other = b[i];
    return other !== undefined && ('port' in entry ? 'port' in other && other.port === entry.port : 'branch' in other && other.branch === entry.branch);
  });
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

/** One ebtables-restore --noflush: all of it or nothing. */
export async function restoreEbtables(runner: Runner, payload: string, timeoutMs: number): Promise<void> {
  if (!runner.which('ebtables-restore')) throw new VifGuardError('MISSING_TOOL', 'ebtables-restore is not installed (apt-get install ebtables)');
  const result = await runner.run('ebtables-restore', ['--noflush'], { input: payload, timeout: timeoutMs });
  if (result.exitCode !== 0 || result.timedOut) {
    const why = result.timedOut ? 'timed out' : result.stderr.trim().split('\n')[0] ?? `exit ${result.exitCode}`;
    throw new VifGuardError('APPLY', `ebtables-restore failed: ${why}`, { details: `${result.stderr.trim()}\npayload:\n${payload}` });
  }
}

/** `ebtables -t nat -L [args]`: the chains listed, or why they cannot be. */
async function listNat(runner: Runner, args: readonly string[]): Promise<{ live: Map<string, LiveEbChain> } | { error: string }> {
  if (!runner.which('ebtables')) return { error: 'ebtables is not installed' };
  const listed = await runner.run('ebtables', ['-t', EB_TABLE, '-L', ...args], { timeout: 30_000 });
  if (listed.exitCode !== 0) return { error: (listed.stderr.trim().split('\n')[0] ?? '') || `ebtables exited ${listed.exitCode}` };
  return { live: parseEbtablesList(listed.stdout) };
}

/** The rules of one nat chain (PREROUTING for a hook), or undefined when ebtables cannot list it. */
export async function readEbtablesChain(runner: Runner, chain: string): Promise<readonly string[] | undefined> {
  const read = await listNat(runner, [chain]);
  return 'live' in read ? read.live.get(chain)?.rules ?? [] : undefined;
}

/** The nat table as it is, or why it cannot be read. */
export function readEbtables(runner: Runner, counters = false): Promise<{ live: Map<string, LiveEbChain> } | { error: string }> {
  return listNat(runner, counters ? ['--Lc'] : []);
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
    throw new VifGuardError('APPLY', `ebtables cannot read its nat table (${read.error}): MAC, ARP and ethertype checks need ebtables with the ebtable_nat module (apt-get install ebtables; modprobe ebtable_nat; on a kernel without nf_tables, update-alternatives --set ebtables /usr/sbin/ebtables-legacy), or layer2 = no in vif-guard.conf`);
  }
  const lines = planEbtables(read.live, desired);
  const payload = lines.length ? `*${EB_TABLE}\n${lines.join('\n')}\n` : '';
  if (dryRun) {
    if (payload) target.log(`ebtables-restore --noflush:\n${payload.trimEnd()}`);
    return payload;
  }
  if (payload) await restoreEbtables(target.runner, payload, target.timeoutMs);
  if (wanted) writeAtomic(target.marker, 'vif-guard has chains in ebtables nat\n');
  else rmSync(target.marker, { force: true });
  return payload;
}
