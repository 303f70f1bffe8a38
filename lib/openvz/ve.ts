import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Settings } from '../config/settings.js';
import { VifGuardError } from '../errors.js';
import type { Runner } from '../runner.js';
import { parseVzConfig, validateCtid } from './config.js';
import { containerEffective, ctConfPath, loadHostModules, persistHostModules, readContainer, readGlobalIptables, readText } from './host.js';
import { writeAtomic } from '../files.js';
import { hostModulesFor, maskOfTokens, modeFor, NETFILTER_MODES, renderSavedIptables, resolveToken, tokensOfMask, withoutTokens, type NetfilterMode } from './modules.js';

export interface VeContext {
  readonly runner: Runner;
  readonly settings: Settings;
  readonly log: (line: string) => void;
}

export interface VeChange {
  readonly target: string;
  readonly before: string[];
  readonly after: string[];
  /** The vzctl argv (or the vz.conf line for --all) that makes it so; empty when nothing changes. */
  readonly command: string[];
  readonly hostModules: string[];
  readonly restartNeeded: boolean;
  readonly notes: string[];
  readonly dryRun: boolean;
}

// Only iptable_filter's own bit: its mask also holds ip_tables'.
const FILTER = 1n << 1n;

async function vzctlHasNetfilter(runner: Runner): Promise<boolean> {
  const result = await runner.run('vzctl', ['--help']);
  return `${result.stdout}${result.stderr}`.includes('--netfilter');
}

async function isRunning(runner: Runner, ctid: string): Promise<boolean> {
  const result = await runner.run('vzctl', ['status', ctid]);
  return / running\b/.test(result.stdout);
}

/** The smallest NETFILTER mode that allows at least this mask (for containers that use NETFILTER). */
function smallestModeCovering(mask: bigint): NetfilterMode {
  return (['disabled', 'stateless', 'stateful', 'full'] as const).find((mode) => (NETFILTER_MODES[mode] & mask) === mask) ?? 'full';
}

async function applyContainer(ctx: VeContext, ctid: string, newMask: bigint, options: { restart: boolean; dryRun: boolean; notes: string[] }): Promise<VeChange> {
  const ct = readContainer(ctx.settings, ctid);
  const current = containerEffective(ctx.settings, ct);
  const notes = [...options.notes];
  const before = tokensOfMask(current.mask);
  const after = tokensOfMask(newMask);
  if (newMask === current.mask) {
    return { target: `container ${ctid}`, before, after, command: [], hostModules: [], restartNeeded: false, notes: [...notes, `nothing to change (${current.source})`], dryRun: options.dryRun };
  }
  const netfilter = await vzctlHasNetfilter(ctx.runner);
  const mode = modeFor(newMask);
  let args: string[];
  if (ct.netfilter) {
    // NETFILTER overrides IPTABLES (openvz.md 3.3): the change has to be a mode.
    const needed = mode ?? smallestModeCovering(newMask);
    if (!mode) notes.push(`container ${ctid} uses NETFILTER="${ct.netfilter}", which overrides IPTABLES; the smallest mode that allows this is "${needed}"`);
    args = ['set', ctid, '--netfilter', needed, '--save'];
  } else if (netfilter && mode && mode !== 'full') {
    args = ['set', ctid, '--netfilter', mode, '--save'];
  } else if (after.length === 0) {
    if (!netfilter) throw new VifGuardError('INVALID_INPUT', `vzctl cannot clear a container's iptables list with --iptables (vzctl >= 4.7 has --netfilter disabled)`);
    args = ['set', ctid, '--netfilter', 'disabled', '--save'];
  } else {
    // --save replaces the list (openvz.md 3.2): always the whole list, dependencies explicit.
    args = ['set', ctid, '--iptables', after.join(' '), '--save'];
  }
  const running = await isRunning(ctx.runner, ctid);
  if (running && options.restart) args.push('--setmode', 'restart');
  const modules = options.dryRun ? hostModulesFor(newMask) : await loadHostModules(ctx.runner, newMask);
  if (!options.dryRun) {
    // Persist first: if the disk is full, nothing about the container has changed yet.
    persistHostModules(ctx.settings, modules);
    const result = await ctx.runner.run('vzctl', args, { timeout: 300_000 });
    if (result.exitCode !== 0) throw new VifGuardError('APPLY', `vzctl ${args.join(' ')} failed (exit ${result.exitCode}): ${result.stderr.trim().split('\n').pop() ?? ''}`);
    if (running && !options.restart) markPending(ctid);
  }
  return { target: `container ${ctid}`, before, after, command: ['vzctl', ...args], hostModules: modules, restartNeeded: running && !options.restart, notes, dryRun: options.dryRun };
}

/** --all: the global IPTABLES= in vz.conf, rewritten in vzctl's saved form, every other line kept. */
function applyGlobal(ctx: VeContext, newMask: bigint, options: { dryRun: boolean; notes: string[] }): VeChange {
  const file = ctx.settings.vzConf;
  const text = readText(file);
  if (text === undefined) throw new VifGuardError('INVALID_INPUT', `${file} does not exist: is this an OpenVZ node?`);
  const global = readGlobalIptables(ctx.settings);
  const current = global?.mask ?? 0x17bfn;
  const notes = [...options.notes];
  const overriding = listContainers(ctx.settings).filter((ctid) => {
    const ct = readContainer(ctx.settings, ctid);
    return ct.iptables !== undefined || ct.netfilter !== undefined;
  });
  if (overriding.length) notes.push(`containers with their own IPTABLES or NETFILTER ignore the global list: ${overriding.join(', ')}`);
  if (newMask === current) return { target: file, before: tokensOfMask(current), after: tokensOfMask(newMask), command: [], hostModules: [], restartNeeded: false, notes, dryRun: options.dryRun };
  const saved = renderSavedIptables(newMask);
  const lines = text.split('\n');
  const iptablesLines = new Set(parseVzConfig(text).filter((line) => line.key === 'IPTABLES').map((line) => line.line - 1));
  const first = [...iptablesLines][0];
  const out = lines.flatMap((line, i) => (i === first ? [saved] : iptablesLines.has(i) ? [] : [line]));
  if (first === undefined) out.splice(out[out.length - 1] === '' ? out.length - 1 : out.length, 0, saved);
  if (!options.dryRun) writeAtomic(file, out.join('\n'));
  notes.push('containers pick up the global list when they are next started');
  return { target: file, before: tokensOfMask(current), after: tokensOfMask(newMask), command: [saved], hostModules: [], restartNeeded: false, notes, dryRun: options.dryRun };
}

/** Container IDs with a config file in the (resolved) config directory. */
export function listContainers(settings: Settings): string[] {
  const dir = join(ctConfPath(settings, '1'), '..');
  try {
    return readdirSync(dir).filter((name) => /^[1-9]\d*\.conf$/.test(name)).map((name) => name.replace(/\.conf$/, '')).sort((a, b) => Number(a) - Number(b));
  } catch {
    return [];
  }
}


/** The list in force for a container (or, for `all`, the global one), as vzctl would compute it. */
function currentMaskOf(ctx: VeContext, target: string): bigint {
  if (target === 'all') return readGlobalIptables(ctx.settings)?.mask ?? 0x17bfn;
  return containerEffective(ctx.settings, readContainer(ctx.settings, validateCtid(target, { source: 'container ID' }))).mask;
}

/** vif-guard ve allow: add modules (by vzctl token or the names admins type) to a container's list. */
export async function allow(ctx: VeContext, target: string, names: readonly string[], options: { restart: boolean; dryRun: boolean }): Promise<VeChange> {
  if (names.length === 0) throw new VifGuardError('INVALID_INPUT', 'name at least one module, e.g. vif-guard ve allow 101 recent state');
  const tokens = names.map(resolveToken);
  const notes: string[] = [];
  const currentMask = currentMaskOf(ctx, target);
  let mask = currentMask | maskOfTokens(tokens);
  const implied = tokensOfMask(maskOfTokens(tokens)).filter((token) => !tokens.includes(token));
  if (implied.length) notes.push(`also allowed, as dependencies: ${implied.join(', ')}`);
  if ((mask & FILTER) === 0n) {
    // ipt_state alone gives a container no filter table at all (openvz.md 3.2).
    mask |= FILTER;
    notes.push('also allowed: iptable_filter (without it the container has no filter table, and every rule fails)');
  }
  return target === 'all' ? applyGlobal(ctx, mask, { dryRun: options.dryRun, notes }) : applyContainer(ctx, target, mask, { ...options, notes });
}

/** vif-guard ve deny: remove modules, and everything that depends on them. */
export async function deny(ctx: VeContext, target: string, names: readonly string[], options: { restart: boolean; dryRun: boolean }): Promise<VeChange> {
  if (names.length === 0) throw new VifGuardError('INVALID_INPUT', 'name at least one module, e.g. vif-guard ve deny 101 recent');
  const tokens = names.map(resolveToken);
  const currentMask = currentMaskOf(ctx, target);
  const mask = withoutTokens(currentMask, tokens);
  const removed = tokensOfMask(currentMask & ~mask).filter((token) => !tokens.includes(token));
  const notes = removed.length ? [`also removed, as they depend on it: ${removed.join(', ')}`] : [];
  return target === 'all' ? applyGlobal(ctx, mask, { dryRun: options.dryRun, notes }) : applyContainer(ctx, target, mask, { ...options, notes });
}

export function list(ctx: VeContext, target: string): { target: string; tokens: string[]; source: string } {
  if (target === 'all') {
    const global = readGlobalIptables(ctx.settings);
    return { target: ctx.settings.vzConf, tokens: tokensOfMask(global?.mask ?? 0x17bfn), source: global ? `IPTABLES in ${ctx.settings.vzConf}` : 'vzctl default (VE_IP_DEFAULT 0x17bf)' };
  }
  const ct = readContainer(ctx.settings, validateCtid(target, { source: 'container ID' }));
  const effective = containerEffective(ctx.settings, ct);
  return { target: `container ${target}`, tokens: tokensOfMask(effective.mask), source: effective.source };
}

const PENDING_DIR = '/var/lib/vif-guard/openvz-restart-pending';

function pendingDir(): string {
  return process.env.VIF_GUARD_STATE_DIR ? join(process.env.VIF_GUARD_STATE_DIR, 'openvz-restart-pending') : PENDING_DIR;
}

function markPending(ctid: string): void {
  try {
    mkdirSync(pendingDir(), { recursive: true });
    writeAtomic(join(pendingDir(), ctid), `${Math.floor(Date.now() / 1000)}\n`);
  } catch {
    // Only a hint for `ve check`; losing it loses no protection.
  }
}

/** A restart is pending when vif-guard changed the list while the container ran and it has not restarted since. */
export async function restartPending(ctx: VeContext, ctid: string): Promise<boolean> {
  const file = join(pendingDir(), ctid);
  if (!existsSync(file)) return false;
  const changedAt = Number(readText(file)?.trim() ?? 0);
  if (!(await isRunning(ctx.runner, ctid))) return false;
  const uptime = await ctx.runner.run('vzlist', ['-H', '-o', 'uptime', ctid]);
  const seconds = Number(uptime.stdout.trim().split(/\s+/)[0]);
  return !Number.isFinite(seconds) || Date.now() / 1000 - seconds < changedAt;
}
