import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VifGuardError } from '../errors.js';
import { validateCtid } from './config.js';
import { containerEffective, readContainer } from './host.js';
import { MODULE_TABLE, tokensOfMask } from './modules.js';
import { restartPending, type VeContext } from './ve.js';

// iptables -t/-m/-j names -> vzctl tokens (openvz.md 5: what the kernel gates and how it is named).
const TABLES: Record<string, string> = { filter: 'iptable_filter', mangle: 'iptable_mangle', nat: 'iptable_nat' };
const MATCHES: Record<string, string> = {
  limit: 'ipt_limit', multiport: 'ipt_multiport', tos: 'ipt_tos', tcpmss: 'ipt_tcpmss', ttl: 'ipt_ttl', length: 'ipt_length',
  conntrack: 'ipt_conntrack', state: 'ipt_state', helper: 'ipt_helper', mac: 'xt_mac', recent: 'ipt_recent', owner: 'ipt_owner',
};
const TARGETS: Record<string, string> = {
  TOS: 'ipt_TOS', REJECT: 'ipt_REJECT', TCPMSS: 'ipt_TCPMSS', LOG: 'ipt_LOG', REDIRECT: 'ipt_REDIRECT',
  MASQUERADE: 'iptable_nat', SNAT: 'iptable_nat', DNAT: 'iptable_nat', NETMAP: 'iptable_nat',
};

/** The tokens an iptables command needs, from its -t, -m and -j; unknown extensions are reported, not guessed. */
export function tokensForRule(rule: string): { tokens: string[]; unknown: string[] } {
  const words = rule.match(/"[^"]*"|'[^']*'|\S+/g) ?? [];
  const tokens = new Set<string>(['ip_tables']);
  const unknown: string[] = [];
  let table = 'filter';
  for (let i = 0; i < words.length; i += 1) {
    const word = words[i] ?? '';
    const next = (words[i + 1] ?? '').replace(/^['"]|['"]$/g, '');
    if (word === '-t' || word === '--table') table = next;
    if (word === '-m' || word === '--match') {
      const token = Object.hasOwn(MATCHES, next) ? MATCHES[next] : undefined;
      if (token) tokens.add(token);
      else if (!['tcp', 'udp', 'icmp', 'comment', 'physdev', 'iprange', 'addrtype'].includes(next)) unknown.push(`-m ${next}`);
    }
    if (word === '-j' || word === '--jump') {
      const token = Object.hasOwn(TARGETS, next) ? TARGETS[next] : undefined;
      if (token) tokens.add(token);
    }
  }
  const tableToken = Object.hasOwn(TABLES, table) ? TABLES[table] : undefined;
  if (!tableToken) throw new VifGuardError('INVALID_INPUT', `unknown table \`${table}\` in the rule (filter, mangle or nat)`);
  tokens.add(tableToken);
  return { tokens: [...tokens], unknown };
}

export interface CheckFinding {
  readonly level: 'ok' | 'problem';
  readonly message: string;
  readonly fix?: string;
}

function hostModuleLoaded(name: string): boolean {
  const sys = process.env.VIF_GUARD_SYS ?? '/sys';
  if (existsSync(join(sys, 'module', name))) return true;
  try {
    return readFileSync(join(process.env.VIF_GUARD_PROC ?? '/proc', 'modules'), 'utf8').split('\n').some((line) => line.startsWith(`${name} `));
  } catch {
    return false;
  }
}

/** vif-guard ve check: why would this container's iptables command fail? */
export async function check(ctx: VeContext, ctid: string, rule: string | undefined): Promise<CheckFinding[]> {
  validateCtid(ctid, { source: 'container ID' });
  const ct = readContainer(ctx.settings, ctid);
  const effective = containerEffective(ctx.settings, ct);
  const allowed = new Set(tokensOfMask(effective.mask));
  const findings: CheckFinding[] = [];
  const needed = rule ? tokensForRule(rule) : { tokens: [...allowed], unknown: [] };
  for (const name of needed.unknown) findings.push({ level: 'ok', message: `${name}: vzctl does not gate it; if it fails, check that the host has the module (modprobe xt_${name.slice(3)})` });
  const missing = needed.tokens.filter((token) => !allowed.has(token));
  if (missing.length) {
    findings.push({
      level: 'problem',
      message: `container ${ctid} is not allowed ${missing.join(', ')} (${effective.source}): iptables inside it fails with "No chain/target/match by that name" or "Table does not exist"`,
      fix: `vif-guard ve allow ${ctid} ${missing.join(' ')} --restart`,
    });
  }
  const rows = MODULE_TABLE.filter((row) => needed.tokens.includes(row.token));
  const notLoaded = rows.flatMap((row) => row.hostModules).filter((module) => !hostModuleLoaded(module));
  if (notLoaded.length) {
    findings.push({
      level: 'problem',
      message: `the host has not loaded ${notLoaded.join(', ')}: a container cannot load modules itself, so its rules fail`,
      fix: `modprobe -a ${notLoaded.join(' ')} (vif-guard ve allow loads them and keeps them loaded at boot)`,
    });
  }
  if (await restartPending(ctx, ctid)) {
    findings.push({ level: 'problem', message: `container ${ctid}'s module list changed while it was running; vzctl applies it only at start`, fix: `vzctl restart ${ctid}` });
  }
  if ((effective.mask & (1n << 1n)) === 0n && needed.tokens.length > 1) {
    findings.push({ level: 'problem', message: `container ${ctid} has no filter table (iptable_filter is not allowed): every filter rule fails`, fix: `vif-guard ve allow ${ctid} iptable_filter --restart` });
  }
  if (findings.every((finding) => finding.level === 'ok')) findings.push({ level: 'ok', message: `container ${ctid} may use ${[...needed.tokens].join(', ')} and the host has the modules loaded` });
  return findings;
}
