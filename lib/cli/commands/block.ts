import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { VifGuardError } from '../../errors.js';
import { applyBlocklists, protectedPorts, runningPortsOf } from '../../core/engine.js';
import { parseZone } from '../../blocklist/zone.js';
import { checkListName, checkTarget, readBlocklists, readBlocklistsOf, writeTargetLists, listsFor, blocklistDir, withParsed, type Blocklist } from '../../blocklist/store.js';
import { parseBlockPrefix, type GuestAddress } from '../../guest/validate.js';
import { createContext, log, printJson, renderTable } from '../context.js';

export interface BlockOptions {
  readonly zones: readonly string[];
  readonly cidrs: readonly string[];
  readonly name: string | undefined;
  readonly both: boolean;
  readonly dryRun: boolean;
  readonly json: boolean;
}

function readZone(path: string): GuestAddress[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new VifGuardError('INVALID_INPUT', `cannot read zone file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseZone(text, path);
}

/**
 * Edit the target's saved lists and apply them, under the lock (applyBlocklists): `edit` gets the
 * target's lists as saved then. If saving fails, the kernel is put back as the saved lists say.
 */
async function saveAndApply(target: string, edit: (mine: readonly Blocklist[]) => Blocklist[], dryRun: boolean): Promise<{ ports: string[]; ms: number }> {
  const ctx = createContext({ light: true });
  let mine: Blocklist[] = [];
  const started = performance.now();
  await applyBlocklists(
    dryRun ? ctx : { ...ctx, log: () => undefined },
    {
      target,
      lists: (saved) => {
        mine = edit(saved.filter((list) => list.target === target));
        return [...saved.filter((list) => list.target !== target), ...mine];
      },
      save: () => {
        try {
          writeTargetLists(target, mine);
        } catch (error) {
          throw new VifGuardError('APPLY', `cannot save ${join(blocklistDir(), `${target}.json`)}: ${(error as Error).message}; the blocklist was not applied`, { cause: error });
        }
      },
    },
    dryRun,
  );
  const ms = performance.now() - started;
  const ports = (await runningPortsOf(ctx, target)).sort();
  return { ports, ms };
}

/** vif-guard block TARGET --zone FILE | --cidr PREFIX: drop traffic from (and with --both, to) these prefixes for one guest. */
export async function runBlock(target: string, options: BlockOptions): Promise<number> {
  checkTarget(target);
  if (options.zones.length === 0 && options.cidrs.length === 0) throw new VifGuardError('INVALID_INPUT', 'say what to block: --zone FILE (one prefix per line) or --cidr PREFIX');
  const name = checkListName(options.name ?? (options.zones[0] ? basename(options.zones[0]).replace(/\.[^.]*$/, '') || 'zone' : 'cidr'));
  // Everything is parsed before anything is saved or applied: one bad line anywhere changes nothing.
  const prefixes = [...options.zones.flatMap(readZone), ...options.cidrs.map((cidr) => parseBlockPrefix(cidr, { source: '--cidr' }))];
  const unique = new Map(prefixes.map((prefix) => [prefix.cidr, prefix]));
  const list: Blocklist = withParsed({
    target,
    name,
    both: options.both,
    source: [...options.zones, ...(options.cidrs.length ? ['--cidr'] : [])].join(' '),
    prefixes: [...unique.keys()],
    updated: new Date().toISOString(),
  }, [...unique.values()]);
  const { ports, ms } = await saveAndApply(target, (mine) => [...mine.filter((other) => other.name !== name), list], options.dryRun);
  const v4 = prefixes.filter((prefix) => prefix.family === 4).length;
  const summary = { target, name, prefixes: list.prefixes.length, ipv4: v4, ipv6: prefixes.length - v4, both: options.both, ports, applyMs: Math.round(ms), dryRun: options.dryRun };
  if (options.json) printJson(summary);
  else {
    const where = ports.length ? `on ${ports.join(' ')}` : `${target} is not running: applied when it comes up`;
    log(`${options.dryRun ? 'would block' : 'blocked'} ${list.prefixes.length} prefixes (${v4} IPv4, ${prefixes.length - v4} IPv6) ${options.both ? 'to and from' : 'to'} ${target} as list ${name}, ${where} (${summary.applyMs} ms)`);
  }
  return 0;
}

/** vif-guard unblock TARGET [--name NAME]: remove one list, or all of a target's lists. */
export async function runUnblock(target: string, options: { name: string | undefined; dryRun: boolean; json: boolean }): Promise<number> {
  checkTarget(target);
  // Only this target's file, to name what goes; the edit itself reads every list under the lock.
  const mine = readBlocklistsOf([target]);
  const removed = mine.filter((list) => options.name === undefined || list.name === options.name);
  if (removed.length === 0) throw new VifGuardError('INVALID_INPUT', `${target} has no blocklist${options.name ? ` named ${options.name}` : ''} (see vif-guard block --list)`);
  const names = new Set(removed.map((list) => list.name));
  const { ports } = await saveAndApply(target, (now) => now.filter((list) => !names.has(list.name)), options.dryRun);
  if (options.json) printJson({ target, removed: removed.map((list) => list.name), ports, dryRun: options.dryRun });
  else log(`${options.dryRun ? 'would remove' : 'removed'} ${removed.map((list) => list.name).join(', ')} from ${target}${ports.length ? ` (${ports.join(' ')})` : ''}`);
  return 0;
}

/** vif-guard block --list: every saved list and the ports it applies to now. */
export async function runBlockList(json: boolean): Promise<number> {
  const lists = readBlocklists();
  const ctx = createContext();
  const ports = await protectedPorts(ctx).catch(() => []);
  const rows = lists.map((list) => ({
    target: list.target,
    name: list.name,
    prefixes: list.prefixes.length,
    direction: list.both ? 'both' : 'inbound',
    ports: ports.filter((port) => listsFor([list], port).length).map((port) => port.ifname),
    source: list.source,
    updated: list.updated,
  }));
  if (json) printJson(rows);
  else if (rows.length === 0) log('no blocklists saved');
  else process.stdout.write(`${renderTable(['TARGET', 'LIST', 'PREFIXES', 'DIRECTION', 'PORTS', 'UPDATED', 'SOURCE'], rows.map((r) => [r.target, r.name, String(r.prefixes), r.direction, r.ports.join(' ') || '(not running)', r.updated, r.source]))}\n`);
  return 0;
}
