import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { VifGuardError, quoteValue } from '../errors.js';
import { readOptional, writeAtomic } from '../files.js';
import { shortDigest } from '../digest.js';
import { isGuestName, parseBlockPrefix, type GuestAddress } from '../guest/validate.js';
import type { GuestPort } from '../guest/model.js';

/** One named blocklist of one target (a vif or a guest): what `vif-guard block` saved. */
export interface Blocklist {
  readonly target: string;
  readonly name: string;
  /** Also drop what the guest sends to these prefixes, not only what it receives from them. */
  readonly both: boolean;
  /** Where the prefixes came from (zone files, --cidr), for `block --list`. */
  readonly source: string;
  readonly prefixes: readonly string[];
  readonly updated: string;
}

/** Prefixes already parsed (a list just read from a zone file): not parsed a second time. */
const parsed = new WeakMap<Blocklist, readonly GuestAddress[]>();

export function withParsed(list: Blocklist, prefixes: readonly GuestAddress[]): Blocklist {
  parsed.set(list, prefixes);
  return list;
}

/** What a port must drop, from every list of its vif name and its guest name. */
export interface PortBlocks {
  /** From these sources, to the guest. */
  readonly inbound: readonly GuestAddress[];
  /** From the guest, to these destinations (lists saved with --both). */
  readonly outbound: readonly GuestAddress[];
}

export function blocklistDir(): string {
  return join(process.env.VIF_GUARD_STATE_DIR ?? '/var/lib/vif-guard', 'blocklists');
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export function checkTarget(target: string): string {
  if (!isGuestName(target) || target.startsWith('.')) throw new VifGuardError('INVALID_INPUT', `Expected a vif or guest name, got ${quoteValue(target)}`);
  return target;
}

export function checkListName(name: string): string {
  if (!NAME.test(name)) throw new VifGuardError('INVALID_INPUT', `Expected \`--name\` to be letters, digits, _ . - (at most 64), got ${quoteValue(name)}`);
  return name;
}

function listFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => name.endsWith('.json'));
  } catch {
    return [];
  }
}

/** One target's file. A file that does not parse is an error naming it: silently dropping a blocklist is worse. */
function readListFile(path: string): Blocklist[] {
  try {
    const lists = JSON.parse(readOptional(path) ?? '[]') as Blocklist[];
    if (!Array.isArray(lists)) throw new Error('not a list');
    for (const list of lists) {
      checkTarget(list.target);
      checkListName(list.name);
      // Prefixes are validated when they are turned into set elements (blocksFor), not on every read.
      if (!Array.isArray(list.prefixes) || typeof list.both !== 'boolean') throw new Error('bad list');
    }
    return lists;
  } catch (error) {
    throw new VifGuardError('INVALID_INPUT', `${path}: not a vif-guard blocklist (${(error as Error).message.split('\n')[0]}); fix or remove it`);
  }
}

/** Every saved list. */
export function readBlocklists(dir = blocklistDir()): Blocklist[] {
  return listFiles(dir).sort().flatMap((file) => readListFile(join(dir, file)));
}

/**
 * The saved lists of these targets alone (a hook's vif and guest), from their own files: a hook does
 * not parse every guest's lists (200 guests with a country zone each: 200-270 ms per read).
 */
export function readBlocklistsOf(targets: readonly string[], dir = blocklistDir()): Blocklist[] {
  const names = [...new Set(targets)].filter((target) => isGuestName(target) && !target.startsWith('.'));
  return names.flatMap((target) => readListFile(join(dir, `${target}.json`)).filter((list) => list.target === target));
}

/** Whether any list is saved (a directory listing, nothing parsed). */
export function hasBlocklists(dir = blocklistDir()): boolean {
  return listFiles(dir).length > 0;
}

/** Replace the lists of one target (all of them: its file holds exactly these). */
export function writeTargetLists(target: string, lists: readonly Blocklist[], dir = blocklistDir()): void {
  const path = join(dir, `${checkTarget(target)}.json`);
  if (lists.length === 0) {
    rmSync(path, { force: true });
    return;
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeAtomic(path, `${JSON.stringify(lists)}\n`, 0o644);
}

/** The lists that apply to a port: saved under its vif name or its guest's name. */
export function blocksFor(lists: readonly Blocklist[], port: GuestPort): PortBlocks | undefined {
  const mine = listsFor(lists, port);
  if (mine.length === 0) return undefined;
  const parse = (list: Blocklist) => parsed.get(list) ?? list.prefixes.map((prefix) => parseBlockPrefix(prefix, { source: `blocklist ${list.name} of ${list.target}` }));
  return {
    inbound: mine.flatMap(parse),
    outbound: mine.filter((list) => list.both).flatMap(parse),
  };
}

/** Identifies what a port's lists hold (kept in its bridge comment): changes whenever any list is rewritten. */
export function listsDigest(lists: readonly Blocklist[]): string {
  const key = lists.map((list) => [list.target, list.name, list.both, list.updated, list.prefixes.length]);
  return shortDigest(JSON.stringify(key));
}

/** The digest of the lists that name this port (as its bridge comment keeps it), or undefined when none do. */
export function portListsDigest(lists: readonly Blocklist[], port: Pick<GuestPort, 'ifname' | 'guest'>): string | undefined {
  const mine = listsFor(lists, port);
  return mine.length ? listsDigest(mine) : undefined;
}

/** The lists that name this port (its vif or its guest). */
export function listsFor(lists: readonly Blocklist[], port: Pick<GuestPort, 'ifname' | 'guest'>): Blocklist[] {
  return lists.filter((list) => list.target === port.ifname || (port.guest !== '-' && list.target === port.guest));
}
