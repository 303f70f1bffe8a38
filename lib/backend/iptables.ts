import { readlinkSync } from 'node:fs';
import { VifGuardError } from '../errors.js';
import type { Runner } from '../runner.js';
import { runOrThrow } from '../runner.js';
import type { Family, TableName } from '../rules/types.js';
import { parseSave, type LiveTable } from './save-parse.js';

export type Variant = 'nft' | 'legacy';

/** One iptables variant. The same canonical text is read and written by both (see render.ts). */
export interface IptablesBackend {
  readonly variant: Variant;
  readonly family: Family;
  /** One table, or every table in one call (cheaper than one call per table: nft reads the whole ruleset either way). */
  save(table?: TableName, counters?: boolean): Promise<string>;
  /** One payload may hold several `*table ... COMMIT` blocks; each is committed atomically on its own. */
  restore(payload: string, timeoutSeconds?: number): Promise<void>;
  /** These filter-table chains, one `-S` each (with iptables-nft, not the table); undefined when one is missing. */
  chains(names: readonly string[]): Promise<LiveTable | undefined>;
}

/**
 * Each family's restore: side by side on iptables-nft (each family is an nf_tables table of its own),
 * one after the other on legacy (both take the xtables lock). Rejects with the first failure.
 */
export async function restoreFamilies(variant: Variant, restores: readonly (() => Promise<void>)[]): Promise<void> {
  if (variant === 'legacy') {
    for (const restore of restores) await restore();
    return;
  }
  const results = await Promise.allSettled(restores.map((restore) => restore()));
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
}

/** `iptables-nft-save`, `ip6tables-legacy-restore`, ... */
export function toolName(family: Family, variant: Variant, verb: 'save' | 'restore'): string {
  return `${family === 6 ? 'ip6tables' : 'iptables'}-${variant}-${verb}`;
}

export function createIptablesBackend(runner: Runner, variant: Variant, waitSeconds: number, family: Family = 4): IptablesBackend {
  const restoreTool = toolName(family, variant, 'restore');
  return {
    variant,
    family,
    async save(table, counters = false) {
      const args = [...(counters ? ['-c'] : []), ...(table ? ['-t', table] : [])];
      const result = await runOrThrow(runner, toolName(family, variant, 'save'), args, 'APPLY');
      return result.stdout;
    },
    async restore(payload, timeoutSeconds = waitSeconds + 10) {
      // -w: wait for the xtables lock (legacy; nft ignores it) instead of failing with status 4 (xen-hotplug.md 3.4).
      const result = await runner.run(restoreTool, ['--noflush', '-w', String(waitSeconds)], {
        input: payload,
        timeout: timeoutSeconds * 1000,
      });
      if (result.exitCode === 0) return;
      throw restoreError(restoreTool, payload, result.stderr, result.timedOut);
    },
    async chains(names) {
      const tool = `${family === 6 ? 'ip6tables' : 'iptables'}-${variant}`;
      const listed = await Promise.all(names.map((name) => runner.run(tool, ['-w', String(waitSeconds), '-S', name])));
      if (listed.some((result) => result.exitCode !== 0)) return undefined;
      return parseSave(`*filter\n${listed.map((result) => result.stdout).join('\n')}\nCOMMIT\n`, 'filter');
    },
  };
}

/** Name the failing payload line with a little context, as iptables-restore reports only its number. */
export function restoreError(tool: string, payload: string, stderr: string, timedOut: boolean): VifGuardError {
  const firstLine = stderr.split('\n').find((line) => line.trim() !== '')?.trim() ?? (timedOut ? 'timed out' : 'failed');
  const lineNumber = Number(/line:? (\d+)/.exec(stderr)?.[1] ?? NaN);
  const lines = payload.split('\n');
  let context = '';
  if (Number.isInteger(lineNumber) && lineNumber > 0) {
    const from = Math.max(0, lineNumber - 3);
    context = lines
      .slice(from, lineNumber + 1)
      .map((line, i) => `${from + i + 1 === lineNumber ? '>' : ' '} ${from + i + 1}: ${line}`)
      .join('\n');
  }
  const failing = Number.isInteger(lineNumber) ? lines[lineNumber - 1] : undefined;
  return new VifGuardError('APPLY', `${tool} failed: ${firstLine}${failing ? ` (payload line ${lineNumber}: ${failing})` : ''}`, {
    details: [stderr.trim(), context].filter(Boolean).join('\n'),
  });
}

/** Which variant `iptables` on this host is, from the alternatives link; nft when unsure (Debian's default). */
export function defaultVariant(runner: Runner): Variant {
  const path = runner.which('iptables');
  if (!path) return 'nft';
  try {
    return readlinkSync(path).includes('legacy') ? 'legacy' : 'nft';
  } catch {
    return 'nft';
  }
}

function holdsRules(saveText: string): boolean {
  // With -c every rule line starts with its counters: `[12:3400] -A ...`.
  return saveText.split('\n').some((line) => /^(\[\d+:\d+\] )?-A /.test(line));
}

function holdsVifGuard(saveText: string): boolean {
  return saveText.includes(':vif-guard');
}

export interface Detection {
  readonly backend: IptablesBackend;
  readonly warnings: readonly string[];
  /** Every table as just read from the chosen variant, so the caller need not read it again. */
  readonly save: string;
}

/**
 * Choose the variant in one place: the one that already holds vif-guard's chains, else the only one
 * that holds rules, else the host's `iptables` alternative. Both holding rules is a warning: packets
 * pass both rulesets, and rules in the one vif-guard does not use are invisible to it.
 */
export async function detectBackend(runner: Runner, setting: 'auto' | Variant, waitSeconds: number, counters = false): Promise<Detection> {
  const missing = (['nft', 'legacy'] as const).filter((v) => !runner.which(`iptables-${v}-restore`));
  if (setting !== 'auto') {
    if (missing.includes(setting)) {
      throw new VifGuardError('MISSING_TOOL', `backend = ${setting} but iptables-${setting}-restore is not installed (apt-get install iptables)`);
    }
    const backend = createIptablesBackend(runner, setting, waitSeconds);
    return { backend, warnings: [], save: await backend.save(undefined, counters) };
  }
  const available = (['nft', 'legacy'] as const).filter((v) => !missing.includes(v));
  if (available.length === 0) throw new VifGuardError('MISSING_TOOL', 'neither iptables-nft nor iptables-legacy is installed (apt-get install iptables)');
  // Hooks run on every guest start: when the host's default variant already holds vif-guard's
  // chains, that settles it without reading the other variant (doctor checks both).
  const preferred = available.includes(defaultVariant(runner)) ? defaultVariant(runner) : available[0] ?? 'nft';
  const saves = new Map<Variant, string>();
  saves.set(preferred, await createIptablesBackend(runner, preferred, waitSeconds).save(undefined, counters));
  if (holdsVifGuard(saves.get(preferred) ?? '')) {
    return { backend: createIptablesBackend(runner, preferred, waitSeconds), warnings: [], save: saves.get(preferred) ?? '' };
  }
  for (const variant of available) if (!saves.has(variant)) saves.set(variant, await createIptablesBackend(runner, variant, waitSeconds).save(undefined, counters));
  const warnings: string[] = [];
  const withRules = available.filter((v) => holdsRules(saves.get(v) ?? ''));
  if (withRules.length === 2) warnings.push('both iptables-nft and iptables-legacy hold rules; packets pass both, and vif-guard manages only one');
  const withOurs = available.filter((v) => holdsVifGuard(saves.get(v) ?? ''));
  const variant: Variant = withOurs[0] ?? (withRules.length === 1 ? withRules[0] : undefined) ?? preferred;
  return { backend: createIptablesBackend(runner, variant, waitSeconds), warnings, save: saves.get(variant) ?? '' };
}
