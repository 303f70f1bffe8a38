import type { Runner } from '../runner.js';
import { VifGuardError } from '../errors.js';
import { IPSET_PREFIX } from '../rules/build.js';
import type { IpsetSpec } from '../rules/types.js';

/*
 * The iptables backend's blocklists: hash:net sets the port chains match (`-m set --match-set`).
 * A set is named after its lists' digest, so new content is a new set: it is created and filled
 * before the chains that use it are committed (the commit is the atomic switch), and the old one is
 * destroyed after. Only sets named `vgb-...` are ever created or destroyed.
 */

export interface IpsetTarget {
  readonly runner: Runner;
  readonly timeoutMs: number;
  readonly log: (line: string) => void;
}

/** vif-guard's sets that exist now; [] without ipset (then nothing of vif-guard's can exist either). */
export async function listIpsets(runner: Runner): Promise<string[]> {
  if (!runner.which('ipset')) return [];
  const listed = await runner.run('ipset', ['list', '-n'], { timeout: 30_000 });
  if (listed.exitCode !== 0) return [];
  return listed.stdout.split('\n').filter((name) => name.startsWith(IPSET_PREFIX));
}

/** Which of these set names are a port's (`vgb-<ifname>-<i|o><4|6>-<digest>`: vif1.0's, not vif1.0-emu's). */
export function ipsetsOfPort(names: readonly string[], ifname: string): string[] {
  const prefix = `${IPSET_PREFIX}${ifname}-`;
  return names.filter((name) => name.startsWith(prefix) && /^[io][46]-[0-9a-f]{6}$/.test(name.slice(prefix.length)));
}

/** vif-guard's sets these rules (as iptables-save prints them) match on. */
export function referencedIpsets(rules: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const rule of rules) {
    const match = /--match-set (\S+) /.exec(`${rule} `);
    if (match?.[1]?.startsWith(IPSET_PREFIX)) names.add(match[1]);
  }
  return names;
}

/** Create and fill the referenced sets that do not exist yet, in one `ipset restore`. Returns the payload. */
export async function createIpsets(target: IpsetTarget, specs: readonly IpsetSpec[], existing: readonly string[], referenced: ReadonlySet<string>, dryRun: boolean): Promise<string> {
  const have = new Set(existing);
  const missing = specs.filter((spec) => referenced.has(spec.name) && !have.has(spec.name));
  if (missing.length === 0) return '';
  if (!target.runner.which('ipset')) throw new VifGuardError('MISSING_TOOL', 'blocklists on the iptables backend need ipset (apt-get install ipset)');
  const lines: string[] = [];
  for (const spec of missing) {
    const elements = spec.elements();
    lines.push(`create ${spec.name} hash:net family ${spec.family === 6 ? 'inet6' : 'inet'} maxelem ${Math.max(65536, elements.length * 2)}`);
    for (const element of elements) lines.push(`add ${spec.name} ${element}`);
  }
  const payload = `${lines.join('\n')}\n`;
  if (dryRun) {
    target.log(`ipset restore:\n${lines.filter((line) => line.startsWith('create ')).join('\n')}\n(and ${lines.length - missing.length} elements)`);
    return payload;
  }
  const result = await target.runner.run('ipset', ['restore'], { input: payload, timeout: target.timeoutMs });
  if (result.exitCode !== 0 || result.timedOut) {
    // A half-filled set is never referenced: destroy what this restore created.
    await destroyIpsets(target, missing.map((spec) => spec.name), false);
    throw new VifGuardError('APPLY', `ipset restore failed: ${result.timedOut ? 'timed out' : result.stderr.trim().split('\n')[0] ?? `exit ${result.exitCode}`}`, { details: result.stderr.trim() });
  }
  return payload;
}

/** Destroy vif-guard's sets no rule uses any more; one still in use (it cannot be) is left for the next sync. */
export async function destroyIpsets(target: IpsetTarget, names: readonly string[], dryRun: boolean): Promise<void> {
  if (names.length === 0) return;
  if (dryRun) {
    target.log(`ipset destroy ${names.join(' ')}`);
    return;
  }
  await Promise.all(
    names.map(async (name) => {
      const result = await target.runner.run('ipset', ['destroy', name], { timeout: target.timeoutMs });
      if (result.exitCode !== 0) target.log(`warning: ipset destroy ${name}: ${result.stderr.trim().split('\n')[0] ?? ''}`);
    }),
  );
}
