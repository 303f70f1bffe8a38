import { readdirSync, readFileSync, statSync, accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { Settings } from '../config/settings.js';
import type { Runner } from '../runner.js';
import { toVifGuardError } from '../errors.js';
import { parseDomuConfig } from '../xen/domu-config.js';
import type { Detection } from '../backend/iptables.js';
import { blockResolver, readEverything } from './engine.js';
import { chooseEngine, layer2Tool, nftablesUnavailable } from './choose.js';
import { readBlocklists } from '../blocklist/store.js';
import { buildStatus, type LiveState } from './status.js';
import { collectInventory } from './inventory.js';
import { advertisesNothing, DHCP_SERVER, isGuarded, MAX_TARGET_PATTERNS } from '../rules/port.js';
import { renderRuleBody } from '../backend/render.js';
import { someOf } from '../names.js';
import { blockChainShapes, blockNames, blockSets, bridgeSkeleton, chainShapes, declaredSets } from '../rules/bridge.js';
import type { LiveBridge } from '../backend/nft-bridge.js';

export type Level = 'ok' | 'warning' | 'error';

export interface Check {
  readonly id: string;
  readonly level: Level;
  readonly message: string;
  /** The one command that fixes it. */
  readonly fix?: string;
}

export interface DoctorEnv {
  readonly runner: Runner;
  readonly settings: Settings;
  /** Prefix for /etc paths (tests point it at a staged tree). */
  readonly root: string;
  readonly procSys: string;
}

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

const ok = (id: string, message: string): Check => ({ id, level: 'ok', message });

/** Where the ports a capped doctor message leaves out are listed (lib/names.ts). */
const LISTED = 'vif-guard status --problems lists them';

/** Overlap checks shown one by one; beyond these, one line counts the rest. */
export const OVERLAPS_SHOWN = 10;

/** One check per overlap between guests' addresses while there are few; a bad address plan adds one more line, not thousands. */
export function overlapChecks(warnings: readonly string[]): Check[] {
  const overlaps = warnings.filter((warning) => warning.includes(' overlaps '));
  const fix = 'give each guest its own addresses in its config, then vif-guard sync';
  const checks: Check[] = overlaps.slice(0, OVERLAPS_SHOWN).map((message) => ({ id: 'overlap', level: 'warning', message, fix }));
  if (overlaps.length > OVERLAPS_SHOWN) {
    checks.push({ id: 'overlap', level: 'warning', message: `and ${overlaps.length - OVERLAPS_SHOWN} more overlaps between guests' addresses, ${overlaps.length} in all (vif-guard sync --dry-run names each)`, fix });
  }
  return checks;
}

export function checkBridgeNetfilter(env: DoctorEnv): Check[] {
  const base = join(env.procSys, 'net/bridge');
  if (read(join(base, 'bridge-nf-call-iptables')) === undefined) {
    return [{ id: 'br_netfilter', level: 'error', message: 'br_netfilter is not loaded: bridged guest traffic bypasses iptables and no vif-guard rule matches', fix: 'modprobe br_netfilter' }];
  }
  const checks: Check[] = [ok('br_netfilter', 'br_netfilter is loaded')];
  for (const [key, level] of [['bridge-nf-call-iptables', 'error'], ['bridge-nf-call-ip6tables', 'warning']] as const) {
    const value = read(join(base, key))?.trim();
    checks.push(
      value === '1'
        ? ok(key, `net.bridge.${key} = 1`)
        : { id: key, level, message: `net.bridge.${key} = ${value}: bridged traffic skips ${key.endsWith('ip6tables') ? 'ip6tables' : 'iptables'}, so the physdev rules match nothing`, fix: `sysctl -w net.bridge.${key}=1` },
    );
  }
  return checks;
}

/** The nftables backend does not need br_netfilter; when something else turned it on, say what it costs. */
export function checkBrNetfilterCost(env: DoctorEnv): Check[] {
  const value = read(join(env.procSys, 'net/bridge/bridge-nf-call-iptables'))?.trim();
  if (value !== '1') return [ok('br_netfilter', 'bridged frames do not traverse iptables (br_netfilter off or bridge-nf-call-iptables = 0)')];
  return [{ id: 'br_netfilter', level: 'warning', message: 'bridge-nf-call-iptables = 1: every bridged frame also traverses iptables, which roughly halves the forwarding rate; the nftables backend does not need it', fix: 'if no other firewall needs bridged frames in iptables: sysctl -w net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0' }];
}

/** The value systemd-sysctl / `sysctl --system` would set at boot: files ordered by name, /etc wins over /run and /usr/lib. */
export function persistentSysctl(root: string, key: string): { value: string | undefined; file: string | undefined } {
  const dirs = ['etc/sysctl.d', 'run/sysctl.d', 'usr/local/lib/sysctl.d', 'usr/lib/sysctl.d', 'lib/sysctl.d'];
  const byName = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[] = [];
    try {
      names = readdirSync(join(root, dir)).filter((name) => name.endsWith('.conf'));
    } catch {
      continue;
    }
    for (const name of names) if (!byName.has(name)) byName.set(name, join(root, dir, name));
  }
  const files = [...[...byName.keys()].sort().map((name) => byName.get(name) ?? ''), join(root, 'etc/sysctl.conf')];
  let value: string | undefined;
  let file: string | undefined;
  const pattern = new RegExp(`^\\s*-?${key.replace(/\./g, '[./]')}\\s*=\\s*(\\S+)`);
  for (const path of files) {
    for (const line of (read(path) ?? '').split('\n')) {
      const match = pattern.exec(line);
      if (match?.[1]) {
        value = match[1];
        file = path;
      }
    }
  }
  return { value, file };
}

export function checkPersistence(env: DoctorEnv): Check[] {
  const checks: Check[] = [];
  for (const key of ['net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables']) {
    const { value, file } = persistentSysctl(env.root, key);
    if (value === '1') checks.push(ok(`persist:${key}`, `${key} = 1 at boot (${file})`));
    else if (value === undefined) checks.push({ id: `persist:${key}`, level: 'warning', message: `${key} is not set at boot: the kernel default may differ (Fedora/RHEL ship 0)`, fix: './install.sh (writes /etc/sysctl.d/60-vif-guard.conf)' });
    else checks.push({ id: `persist:${key}`, level: 'warning', message: `${key} will be ${value} after a reboot: ${file} sets it last`, fix: `sed -i 's/^\\(\\s*${key.replace(/\./g, '\\.')}\\s*=\\s*\\).*/\\11/' ${file}` });
  }
  const modulesFiles = ['etc/modules-load.d', 'run/modules-load.d', 'usr/lib/modules-load.d'].flatMap((dir) => {
    try {
      return readdirSync(join(env.root, dir)).map((name) => join(env.root, dir, name));
    } catch {
      return [];
    }
  });
  const loaded = [...modulesFiles, join(env.root, 'etc/modules')].some((path) => /^\s*br_netfilter\s*$/m.test(read(path) ?? ''));
  checks.push(loaded ? ok('persist:br_netfilter', 'br_netfilter is loaded at boot') : { id: 'persist:br_netfilter', level: 'warning', message: 'br_netfilter is not in modules-load.d: after a reboot it loads only when a rule needs it', fix: "echo br_netfilter > /etc/modules-load.d/vif-guard.conf" });
  return checks;
}

/** Whether `tool` takes these rules (`--test`: nothing is committed); the error names what is missing. */
async function probeMatches(env: DoctorEnv, tool: string, rules: readonly string[], id: string, fine: string, missing: (reason: string) => string, fix: string): Promise<Check> {
  const input = `*filter\n:vif-guard-doctor - [0:0]\n${rules.map((rule) => `-A vif-guard-doctor ${rule}\n`).join('')}COMMIT\n`;
  const result = await env.runner.run(tool, ['--test', '--noflush'], { input });
  if (result.exitCode === 0) return ok(id, fine);
  return { id, level: 'error', message: missing(result.stderr.trim().split('\n')[0] ?? `${tool} --test failed`), fix };
}

export async function checkIptables(env: DoctorEnv, detection: Detection): Promise<Check[]> {
  const checks: Check[] = [];
  const variant = detection.backend.variant;
  // Both variants: read the other one too (the hook skips it for speed).
  const other = variant === 'nft' ? 'legacy' : 'nft';
  if (env.runner.which(`iptables-${other}-save`)) {
    const otherSave = await env.runner.run(`iptables-${other}-save`, []);
    const holds = (text: string) => text.split('\n').some((line) => /^(\[\d+:\d+\] )?-A /.test(line));
    if (otherSave.exitCode === 0 && holds(otherSave.stdout) && holds(detection.save)) {
      checks.push({ id: 'both-backends', level: 'warning', message: `both iptables-${variant} (used by vif-guard) and iptables-${other} hold rules: packets pass both, and rules in iptables-${other} are invisible to \`iptables\``, fix: `iptables-${other}-save > /root/iptables-${other}.rules && migrate them, then iptables-${other} -F` });
    }
  }
  if (!checks.some((check) => check.id === 'both-backends')) checks.push(ok('both-backends', `rules only in iptables-${variant}`));
  // physdev: "No chain/target/match by that name" when xt_physdev is missing.
  checks.push(await probeMatches(env, `iptables-${variant}-restore`, ['-m physdev --physdev-is-bridged -j RETURN'], 'physdev', 'the physdev match is available', (reason) => `the physdev match is not available (${reason})`, 'modprobe xt_physdev'));
  // The DHCP rules (rules/port.ts) match ports with multiport: without it every guest's chain fails to load.
  checks.push(await probeMatches(env, `iptables-${variant}-restore`, [renderRuleBody([...DHCP_SERVER, '-j', 'RETURN'])], 'multiport', 'the multiport match (DHCP rules) is available', (reason) => `the multiport match is not available (${reason}): guests' chains cannot be loaded`, 'modprobe xt_multiport'));
  // The neighbour-advertisement checks (rules/port.ts): without these matches every IPv6 port's chain fails to load.
  checks.push(
    await probeMatches(
      env,
      `ip6tables-${variant}-restore`,
      ['-p ipv6-icmp -m icmp6 --icmpv6-type 136 -m ipv6header ! --header protocol -j RETURN', '-m string ! --hex-string "|fe80|" --algo bm --from 48 --to 50 -j RETURN'],
      'nd-matches',
      'the ipv6header and string matches (neighbour advertisement checks) are available',
      (reason) => `the ipv6header or string match is not available (${reason}): guests' IPv6 chains cannot be loaded`,
      'modprobe ip6t_ipv6header xt_string',
    ),
  );
  return checks;
}

export function checkConntrack(env: DoctorEnv, guardedPorts: number, notrackTable: boolean | undefined): Check[] {
  const base = join(env.procSys, 'net/netfilter');
  const count = Number(read(join(base, 'nf_conntrack_count')));
  const max = Number(read(join(base, 'nf_conntrack_max')));
  const checks: Check[] = [];
  if (!Number.isFinite(count) || !Number.isFinite(max) || max <= 0) return [ok('conntrack', 'connection tracking is not in use')];
  const timeouts = ['nf_conntrack_udp_timeout', 'nf_conntrack_udp_timeout_stream', 'nf_conntrack_tcp_timeout_established']
    .map((key) => `${key.replace('nf_conntrack_', '')}=${read(join(base, key))?.trim() ?? '?'}s`)
    .join(', ');
  const ratio = count / max;
  const usage = `nf_conntrack_count ${count} of nf_conntrack_max ${max} (${(ratio * 100).toFixed(0)}%; timeouts ${timeouts})`;
  if (ratio >= 0.9) checks.push({ id: 'conntrack', level: 'error', message: `conntrack table nearly full, new connections are being dropped: ${usage}`, fix: `sysctl -w net.netfilter.nf_conntrack_max=${max * 2}` });
  else if (ratio >= 0.75) checks.push({ id: 'conntrack', level: 'warning', message: `conntrack table filling up: ${usage}`, fix: `sysctl -w net.netfilter.nf_conntrack_max=${max * 2}` });
  else checks.push(ok('conntrack', usage));
  if (guardedPorts > 0 && !env.settings.notrack) {
    checks.push({ id: 'notrack', level: 'warning', message: 'notrack = no: switched guest traffic fills the conntrack table', fix: "set notrack = yes in /etc/vif-guard/vif-guard.conf, then vif-guard sync" });
  } else if (guardedPorts > 0 && notrackTable === false) {
    checks.push({ id: 'notrack', level: 'warning', message: 'the NOTRACK table (nft bridge vif_guard) is missing: guest traffic is being tracked', fix: env.runner.which('nft') ? 'vif-guard sync' : 'apt-get install nftables && vif-guard sync' });
  } else if (guardedPorts > 0) {
    checks.push(ok('notrack', 'switched guest traffic is not tracked'));
  }
  return checks;
}

/**
 * Whether this process started from V8's code cache (set by the bundle's loader, build.mjs). Every
 * entry's cache is written by the same node at install, so the CLI's state is the hooks' too.
 * undefined when not run from the bundle (a source tree): nothing to say.
 */
export function checkCodeCache(state: string | undefined): Check[] {
  if (state === undefined) return [];
  if (state === 'used') return [ok('code-cache', "hooks start from V8's code cache")];
  const why = state === 'rejected' ? "V8 rejects the installed code cache (node changed since install.sh ran)" : 'no code cache is installed';
  return [{ id: 'code-cache', level: 'warning', message: `${why}: every hook compiles its bundle again: ~10 ms more per guest start, ~30 ms per command`, fix: './install.sh (writes the cache with this node)' }];
}

export function checkHooks(env: DoctorEnv): Check[] {
  const xen = join(env.root, env.settings.xenScriptsDir);
  try {
    statSync(xen);
  } catch {
    return [ok('hooks', `${env.settings.xenScriptsDir} does not exist (no Xen toolstack): nothing to hook`)];
  }
  const hook = join(xen, 'vif-post.d/vif-guard.hook');
  try {
    accessSync(hook, constants.X_OK);
    return [ok('hooks', `${env.settings.xenScriptsDir}/vif-post.d/vif-guard.hook is installed and executable`)];
  } catch {
    let exists = true;
    try {
      statSync(hook);
    } catch {
      exists = false;
    }
    return exists
      ? [{ id: 'hooks', level: 'error', message: `${env.settings.xenScriptsDir}/vif-post.d/vif-guard.hook is not executable: vif-bridge skips it and guests start unprotected`, fix: `chmod +x ${env.settings.xenScriptsDir}/vif-post.d/vif-guard.hook` }]
      : [{ id: 'hooks', level: 'error', message: `${env.settings.xenScriptsDir}/vif-post.d/vif-guard.hook is missing: guests start unprotected`, fix: './install.sh' }];
  }
}

/** OpenVZ: vps.mount (modules and veth protection at start) and the vznet.conf EXTERNAL_SCRIPT (each veth). */
export function checkOpenvzHooks(env: DoctorEnv): Check[] {
  const confDir = join(env.root, env.settings.vzConfDir);
  try {
    statSync(confDir);
  } catch {
    return [];
  }
  const checks: Check[] = [];
  const mount = join(confDir, 'vps.mount');
  let mountOk = false;
  try {
    accessSync(mount, constants.X_OK);
    mountOk = (read(mount) ?? '').includes('vz-mount');
  } catch {
    mountOk = false;
  }
  checks.push(
    mountOk
      ? ok('openvz:vps.mount', `${env.settings.vzConfDir}/vps.mount runs vif-guard before every container start`)
      : { id: 'openvz:vps.mount', level: 'error', message: `${env.settings.vzConfDir}/vps.mount is not vif-guard's (or not executable): containers start without their host modules and veth protection`, fix: './install.sh' },
  );
  const vznet = read(join(env.root, env.settings.vznetConf));
  const script = vznet === undefined ? undefined : /^\s*EXTERNAL_SCRIPT="?([^"\n]*)"?/m.exec(vznet)?.[1];
  checks.push(
    script?.endsWith('/vznet-hook')
      ? ok('openvz:vznet', `${env.settings.vznetConf} runs vif-guard for each veth`)
      : { id: 'openvz:vznet', level: 'warning', message: `${env.settings.vznetConf}'s EXTERNAL_SCRIPT is ${script ? `\`${script}\`` : 'not set'}: veths added to running containers are not protected until the next sync`, fix: './install.sh (it keeps the current script running after vif-guard\'s)' },
  );
  return checks;
}

const HOOKED_SCRIPTS = new Set(['vif-bridge', 'vif-route', 'vif-nat', 'vif-guard']);

export function checkXlConf(env: DoctorEnv): Check[] {
  const text = read(join(env.root, env.settings.xlConf));
  if (text === undefined) return [];
  let config;
  try {
    config = parseDomuConfig(text, env.settings.xlConf);
  } catch (error) {
    return [{ id: 'xl.conf', level: 'warning', message: toVifGuardError(error).shortMessage }];
  }
  const checks: Check[] = [];
  const script = config.get('vif.default.script') ?? config.get('vifscript');
  const name = script?.kind === 'string' ? script.value.split('/').pop() ?? '' : 'vif-bridge';
  if (!HOOKED_SCRIPTS.has(name)) {
    checks.push({ id: 'xl.conf', level: 'warning', message: `${env.settings.xlConf}: vif.default.script = "${name}" does not run vif-post.d hooks, so vif-guard never sees those vifs`, fix: `set vif.default.script = "vif-guard" in ${env.settings.xlConf} (it runs vif-bridge, then vif-guard)` });
  } else {
    checks.push(ok('xl.conf', `vif.default.script = ${name} runs the vif-guard hook`));
  }
  const hotplug = config.get('run_hotplug_scripts');
  if (hotplug?.kind === 'number' && hotplug.value === '0') {
    checks.push({ id: 'xl.conf:run_hotplug_scripts', level: 'warning', message: `${env.settings.xlConf}: run_hotplug_scripts = 0 relies on udev, which Xen >= 4.6 no longer uses`, fix: `set run_hotplug_scripts = 1 in ${env.settings.xlConf}` });
  }
  return checks;
}

export function worst(checks: readonly Check[]): number {
  return checks.some((check) => check.level === 'error') ? 2 : checks.some((check) => check.level === 'warning') ? 1 : 0;
}

/**
 * What doctor compares a full listing of the bridge table with: the skeleton, and each blocked port
 * with its lists' digest. Undefined when the table is absent or has another layout (sync rebuilds it
 * anyway), or when this host needs no bridge table.
 */
function expectedLayout(bridge: LiveBridge, settings: Settings, ip: boolean): { skeleton: ReturnType<typeof bridgeSkeleton>; blocked: [string, string][] } | undefined {
  if (!bridge.exists || (!ip && !settings.layer2)) return undefined;
  const skeleton = bridgeSkeleton(settings, ip);
  if (bridge.digest !== skeleton.digest) return undefined;
  const blocked = ip ? [...bridge.ports.values()].flatMap((port): [string, string][] => (port.fields?.block ? [[port.ifname, port.fields.block]] : [])) : [];
  return { skeleton, blocked };
}

/**
 * The bridge table's chains against what vif-guard writes (sync checks only its sets): each chain's
 * hook and the verdict every rule ends in. A rule inserted, deleted or turned from drop to accept by
 * hand shows here; only sync --rebuild puts it back. Nothing to say when the table is absent or has
 * another layout (then sync rebuilds it anyway) or was listed without its rules.
 */
export function checkBridgeChains(bridge: LiveBridge | undefined, settings: Settings, ip: boolean): Check[] {
  const layout = bridge?.chains && expectedLayout(bridge, settings, ip);
  if (!bridge?.chains || !layout) return [];
  const expected = chainShapes(layout.skeleton.body);
  for (const [ifname, digest] of layout.blocked) for (const [name, shape] of blockChainShapes(ifname, digest, settings)) expected.set(name, shape);
  const problems: string[] = [];
  for (const [name, want] of expected) {
    const have = bridge.chains.get(name);
    if (!have) problems.push(`chain ${name} is missing`);
    else if (have.hook !== want.hook) problems.push(`chain ${name} hooks ${have.hook ?? 'nothing'} instead of ${want.hook ?? 'nothing'}`);
    else {
      const at = have.verdicts.findIndex((verdict, i) => verdict !== want.verdicts[i]);
      const rule = at >= 0 ? at : have.verdicts.length === want.verdicts.length ? -1 : Math.min(have.verdicts.length, want.verdicts.length);
      if (rule >= 0) problems.push(`chain ${name} has ${have.verdicts.length} rules where vif-guard wrote ${want.verdicts.length}, the first difference at rule ${rule + 1} (${have.verdicts[rule] ?? 'none'} instead of ${want.verdicts[rule] ?? 'none'})`);
    }
  }
  for (const name of bridge.chains.keys()) if (!expected.has(name)) problems.push(`chain ${name} is not one vif-guard wrote`);
  if (problems.length === 0) return [ok('bridge-chains', `bridge vif_guard's ${expected.size} chains are as vif-guard wrote them`)];
  return [
    {
      id: 'bridge-chains',
      level: 'error',
      message: `bridge vif_guard was edited by hand, and sync does not check its rules: ${someOf(problems, 'nft -a list table bridge vif_guard shows them', '; ')}`,
      fix: 'vif-guard sync --rebuild',
    },
  ];
}

/**
 * Sets in the bridge table that nothing uses: the skeleton's, and each blocked port's four, are
 * expected. A blocklist's sets outlive it only when its port's record lost the list's digest (a hand
 * edit of the table); they match nothing, but a country zone holds megabytes of kernel memory, and
 * sync, which reads the sets it knows by name, would never see them.
 */
export function checkBridgeSets(bridge: LiveBridge | undefined, settings: Settings, ip: boolean): Check[] {
  const layout = bridge?.sets && expectedLayout(bridge, settings, ip);
  if (!bridge?.sets || !layout) return [];
  const expected = declaredSets(layout.skeleton.body);
  for (const [ifname, digest] of layout.blocked) for (const [name] of blockSets(blockNames(ifname, digest))) expected.add(name);
  const unused = [...bridge.sets].filter((name) => !expected.has(name)).sort();
  if (unused.length === 0) return [ok('bridge-sets', `bridge vif_guard's ${bridge.sets.size} sets are all in use`)];
  const blocklists = unused.filter((name) => name.startsWith('bl_')).length;
  return [
    {
      id: 'bridge-sets',
      level: 'warning',
      message: `bridge vif_guard holds ${unused.length} set${unused.length === 1 ? '' : 's'} that no port uses${blocklists ? ` (${blocklists} of a blocklist no port has any more)` : ''}; they match nothing but hold kernel memory: ${someOf(unused, 'nft -t list sets table bridge vif_guard shows them', ', ')}`,
      fix: 'vif-guard sync --rebuild',
    },
  ];
}

/** Every check, in the order an admin should read them. A check that cannot run is a warning, not a crash. */
export async function runDoctor(env: DoctorEnv): Promise<Check[]> {
  const asks = env.settings.backend === 'auto' || env.settings.backend === 'nftables';
  const why = asks ? await nftablesUnavailable(env.runner, env.settings) : undefined;
  const engine = env.settings.backend === 'auto' ? (why === undefined ? 'nftables' : 'iptables') : await chooseEngine(env.runner, env.settings);
  const l2 = engine === 'iptables' ? await layer2Tool({ runner: env.runner, settings: env.settings, lockPath: '' }) : undefined;
  const checks: Check[] = [
    engine === 'nftables' && why !== undefined
      ? { id: 'backend', level: 'error', message: `backend = nftables, but ${why}: every hook fails closed`, fix: 'set backend = auto in /etc/vif-guard/vif-guard.conf (the iptables backend on this kernel), then vif-guard sync' }
      : ok('backend', engine === 'nftables' ? 'backend: nftables (every check in nft\'s bridge family; br_netfilter not needed)' : `backend: iptables (physdev rules; ${l2 === 'ebtables' ? 'MAC/ARP in ebtables nat PREROUTING' : l2 ? "MAC/ARP in nft's bridge family" : 'no MAC/ARP checks'})${why ? `; auto did not pick nftables: ${why}` : ''}`),
  ];
  if (engine === 'iptables') checks.push(...checkBridgeNetfilter(env), ...checkPersistence(env));
  else checks.push(...checkBrNetfilterCost(env));
  let live: LiveState | undefined;
  try {
    const everything = await readEverything({ runner: env.runner, settings: env.settings, lockPath: '', log: () => undefined });
    if (everything.detection) checks.push(...(await checkIptables(env, everything.detection)));
    live = everything.state;
    if (engine === 'nftables' && live.filter4.chains.has('vif-guard-fwd')) {
      checks.push({ id: 'leftover-iptables', level: 'warning', message: 'vif-guard chains from the iptables backend are still in iptables', fix: 'vif-guard sync' });
    }
  } catch (error) {
    checks.push({ id: engine === 'iptables' ? 'iptables' : 'nftables', level: 'error', message: toVifGuardError(error).shortMessage, fix: engine === 'iptables' ? 'apt-get install iptables' : 'apt-get install nftables' });
  }
  let guarded = 0;
  try {
    const inventory = await collectInventory(env.runner, env.settings);
    const unaddressed = inventory.ports.filter((port) => !isGuarded(port, env.settings));
    guarded = inventory.ports.length - unaddressed.length;
    checks.push(...overlapChecks(inventory.warnings));
    checks.push(
      unaddressed.length
        ? { id: 'unaddressed', level: 'warning', message: `running vifs with no ip= configured are not protected: ${someOf(unaddressed.map((p) => `${p.ifname} (${p.guest})`), LISTED, ', ')}`, fix: 'add ip=... to their vif lines, or set unaddressed = block, then vif-guard sync' }
        : ok('unaddressed', 'every running vif has addresses configured'),
    );
    // Only where ip6tables enforces the advertisement check: the bridge table's sets take any number.
    const silenced = engine === 'iptables' ? inventory.ports.filter((port) => advertisesNothing(port, env.settings)) : [];
    if (silenced.length) {
      checks.push({
        id: 'nd-patterns',
        level: 'warning',
        message: `guests whose IPv6 addresses need more than ${MAX_TARGET_PATTERNS} neighbour-advertisement patterns can advertise none on the iptables backend, so their IPv6 neighbours cannot reach them: ${someOf(silenced.map((p) => `${p.ifname} (${p.guest})`), LISTED, ', ')}`,
        fix: 'give them a covering prefix (a /64 or /56) instead of many single addresses or odd-length prefixes, or use the nftables backend',
      });
    }
    if (live && inventory.hypervisor) {
      const rows = buildStatus(live, inventory.ports, env.settings, blockResolver(env.settings, readBlocklists()));
      const unprotected = rows.filter((row) => row.state === 'unprotected').map((row) => row.vif);
      const drift = rows.filter((row) => row.state === 'drift' || row.state === 'stale').map((row) => `${row.vif} (${row.state})`);
      if (unprotected.length) checks.push({ id: 'drift', level: 'error', message: `running vifs without their rules: ${someOf(unprotected, LISTED, ', ')}`, fix: 'vif-guard sync' });
      else if (drift.length) checks.push({ id: 'drift', level: 'warning', message: `live rules differ from sync's plan: ${someOf(drift, LISTED, ', ')}`, fix: 'vif-guard sync' });
      else checks.push(ok('drift', 'live rules match sync\'s plan'));
    }
  } catch (error) {
    checks.push({ id: 'inventory', level: 'error', message: `cannot read the guests: ${toVifGuardError(error).shortMessage}` });
  }
  if (live?.bridge && l2 !== 'ebtables') checks.push(...checkBridgeChains(live.bridge, env.settings, engine === 'nftables'), ...checkBridgeSets(live.bridge, env.settings, engine === 'nftables'));
  let notrackTable: boolean | undefined;
  if (live?.bridge && l2 !== 'ebtables') notrackTable = live.bridge.exists && live.bridge.ports.size > 0;
  if (!env.settings.layer2 && guarded > 0) {
    checks.push({ id: 'layer2', level: 'warning', message: 'layer2 = no: guests can forge their MAC, poison ARP and send VLAN-tagged frames past the IP checks', fix: 'apt-get install nftables (Linux 5.6 or later) or ebtables, set layer2 = yes, then vif-guard sync' });
  } else if (l2 === 'ebtables' && guarded > 0) {
    checks.push(
      live?.ebtables
        ? ok('layer2', 'layer 2: MAC, ARP and ethertype checks in ebtables (nat PREROUTING, before the bridge learns a MAC)')
        : { id: 'layer2', level: 'error', message: 'layer 2 is set to ebtables, but ebtables cannot read its nat table: hooks fail closed', fix: 'apt-get install ebtables; modprobe ebtable_nat (or layer2 = no in vif-guard.conf)' },
    );
    if (env.settings.notrack) checks.push({ id: 'notrack', level: 'warning', message: 'layer 2 is in ebtables, which cannot NOTRACK: switched guest traffic is tracked (that needs the bridge table, Linux 5.6 or later)', fix: 'keep nf_conntrack_max well above the guests\' flows, or upgrade the kernel' });
  }
  // With layer 2 in ebtables the notrack check above says what there is to say.
  const conntrack = checkConntrack(env, guarded, notrackTable).filter((check) => !(l2 === 'ebtables' && check.id === 'notrack'));
  const codeCache = (globalThis as { __vifGuardCodeCache?: string }).__vifGuardCodeCache;
  checks.push(...conntrack, ...checkHooks(env), ...checkCodeCache(codeCache), ...checkXlConf(env), ...checkOpenvzHooks(env));
  return checks;
}
