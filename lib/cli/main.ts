#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadSettings } from '../config/load.js';
import { exitCodeFor, toVifGuardError, VifGuardError } from '../errors.js';
import { removeEverything } from '../core/engine.js';
import { findDomuConfigs, readDomuNetworks } from '../xen/domu-files.js';
import { createContext, log, printJson } from './context.js';
import { runSync } from './commands/sync.js';
import { runStatus } from './commands/status.js';
import { runDoctorCommand } from './commands/doctor.js';
import { runDemoCommand } from './commands/demo.js';
import { runVe } from './commands/ve.js';
import { runBlock, runBlockList, runUnblock } from './commands/block.js';
import { listen, send } from '../demo/agent.js';

/** Set by build.mjs in the installed bundle (no package.json beside it); the repository's package.json otherwise. */
declare const VIF_GUARD_VERSION: string | undefined;
function version(): string {
  if (typeof VIF_GUARD_VERSION === 'string') return VIF_GUARD_VERSION;
  try {
    return String((JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown }).version);
  } catch {
    return 'unknown';
  }
}

async function checkConfig(files: string[], json: boolean): Promise<number> {
  const settings = loadSettings();
  const paths = files.length ? files : findDomuConfigs(settings.xenConfigDir);
  const networks = readDomuNetworks(paths);
  if (json) {
    printJson(networks.map((n) => ({ ...n, vifs: n.vifs.map((v) => ({ ...v, addresses: v.addresses.map((a) => a.cidr) })) })));
    return 0;
  }
  for (const network of networks) {
    for (const vif of network.vifs) {
      const addresses = vif.addresses.map((a) => a.cidr).join(' ') || '(none: unprotected unless unaddressed = block)';
      process.stdout.write(`${network.file}:${vif.origin.line ?? '?'}\t${network.name ?? '-'}\tvif ${vif.index}\t${vif.vifname ?? '(vifD.N)'}\t${vif.mac ?? '-'}\t${vif.bridge ?? 'xenbr0'}\t${addresses}\n`);
    }
  }
  log(`${paths.length} config file(s), ${networks.reduce((n, x) => n + x.vifs.length, 0)} vif(s), all valid`);
  return 0;
}

async function removeRules(dryRun: boolean): Promise<number> {
  const report = await removeEverything(createContext(), dryRun);
  const removed = report.plans.flatMap((plan) => plan.removed.map((chain) => `${plan.family === 6 ? 'ip6tables' : 'iptables'} ${chain}`));
  if (report.bridgeScript) removed.push('nft table bridge vif_guard');
  log(`${dryRun ? 'would remove' : 'removed'} ${removed.length} chain(s)/table(s) (${report.backend})${removed.length ? `: ${removed.join(', ')}` : ''}`);
  return 0;
}

/** The CLI: parse, call one function, map errors to `vif-guard: <message>` and an exit status. */
/** `--rule "-A INPUT ..."`: yargs would read a value that starts with `-` as options, so glue it on. */
function glueRule(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--rule' && argv[i + 1] !== undefined) {
      out.push(`--rule=${argv[i + 1]}`);
      i += 1;
    } else {
      out.push(argv[i] ?? '');
    }
  }
  return out;
}

export async function main(rawArgv: string[]): Promise<number> {
  const argv = glueRule(rawArgv);
  let status = 0;
  const set = (code: number) => {
    status = code;
  };
  try {
    await yargs(argv)
      .scriptName('vif-guard')
      .usage('$0 <command> [options]\n\nAnti-spoofing for Xen vifs: only a guest\'s own addresses leave its vif.')
      .command(
        'sync',
        'Make the live rules exactly what the running guests need (boot, after a firewall restart, by hand)',
        (y) =>
          y
            .option('dry-run', { type: 'boolean', default: false, describe: 'print the exact iptables-restore/nft payload instead of applying it' })
            .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON' })
            .option('rebuild', { type: 'boolean', default: false, describe: 'also replace the bridge table vif_guard whole, in one transaction: for rules edited by hand inside it, which sync does not read (doctor does)' })
            .example('$0 sync', 'after `iptables -F` or a firewall restart: put every guest\'s rules back')
            .example('$0 sync --dry-run', 'show what would be added and removed')
            .example('$0 sync --rebuild', 'doctor says bridge vif_guard was edited by hand: write it again as vif-guard would'),
        async (args) => set(await runSync({ dryRun: args['dry-run'], json: args.json, rebuild: args.rebuild })),
      )
      .command(
        'status [targets..]',
        'One line per guest port: state and packets dropped as spoofed, then a count per state',
        (y) =>
          y
            .positional('targets', { type: 'string', array: true, describe: 'only these vifs or guests' })
            .option('problems', { type: 'boolean', default: false, describe: 'only ports not fully protected (unprotected, drift, stale, no addresses) or whose guest sent something that was dropped' })
            .option('json', { type: 'boolean', default: false, describe: 'print the rows as JSON, for monitoring' })
            .option('prometheus', { type: 'string', describe: 'also write every port\'s counters to this node_exporter textfile' })
            .example('$0 status', 'which guests are protected, and who tried to spoof')
            .example('$0 status --problems', 'with thousands of guests: only the ones to look at')
            .example('$0 status web01 vif12.0', 'one guest (every vif of it) and one vif')
            .example('$0 status --prometheus /var/lib/prometheus/node-exporter/vif-guard.prom', 'feed node_exporter\'s textfile collector'),
        async (args) => set(await runStatus({ json: args.json, prometheus: args.prometheus, targets: (args.targets ?? []).map(String), problems: args.problems })),
      )
      .command(
        'doctor',
        'Check everything that silently breaks anti-spoofing, with the command that fixes each (exit 0 ok, 1 warnings, 2 errors)',
        (y) =>
          y
            .option('json', { type: 'boolean', default: false, describe: 'print the checks as JSON' })
            .example('$0 doctor', 'after installing, after a kernel or firewall change, at 3 a.m.')
            .example('$0 doctor --json | jq \'.checks[] | select(.level != "ok")\'', 'only the problems'),
        async (args) => set(await runDoctorCommand({ json: args.json })),
      )
      .command(
        'demo',
        'Build a small dom0 in network namespaces, attack it before and after protection, print what got through',
        (y) =>
          y
            .option('json', { type: 'boolean', default: false, describe: 'print the table as JSON' })
            .example('$0 demo', 'see what vif-guard stops, on any Linux machine (as root); also a self-test on a real host'),
        async (args) => set(await runDemoCommand({ json: args.json })),
      )
      .command(
        've <action> <target> [names..]',
        'OpenVZ: which iptables modules a container may use (allow, deny, list, check); target is a CTID or all',
        (y) =>
          y
            .positional('action', { choices: ['allow', 'deny', 'list', 'check'] as const, demandOption: true })
            .positional('target', { type: 'string', demandOption: true, describe: 'container ID, or `all` for the global IPTABLES in vz.conf' })
            .positional('names', { type: 'string', array: true, describe: 'modules: vzctl names (ipt_recent) or the usual ones (recent, state, nat, conntrack)' })
            .option('restart', { type: 'boolean', default: false, describe: 'restart a running container so the list applies now (vzctl --setmode restart)' })
            .option('dry-run', { type: 'boolean', default: false, describe: 'print the vzctl command instead of running it' })
            .option('rule', { type: 'string', describe: 'with check: the iptables arguments that fail inside the container' })
            .option('json', { type: 'boolean', default: false })
            .example('$0 ve allow 101 recent state', 'let container 101 use -m recent and -m state (adds ip_conntrack, keeps its list)')
            .example('$0 ve check 101 --rule "-A INPUT -m recent --set"', 'why does this fail inside container 101?')
            .example('$0 ve deny 101 nat --dry-run', 'show the vzctl command that removes NAT'),
        async (args) =>
          set(await runVe(args.action, String(args.target), (args.names as string[] | undefined) ?? [], { restart: args.restart, dryRun: args['dry-run'], json: args.json, rule: args.rule })),
      )
      .command(
        'block [target]',
        'Drop traffic from a set of prefixes (a country zone, --cidr) to one guest or vif, and with --both from it to them; saved, restored by sync',
        (y) =>
          y
            .positional('target', { type: 'string', describe: 'a vif (vif3.0) or a guest name (all its vifs)' })
            .option('zone', { type: 'string', array: true, default: [] as string[], describe: 'zone file: one IPv4/IPv6 prefix per line, # comments' })
            .option('cidr', { type: 'string', array: true, default: [] as string[], describe: 'a prefix to block (repeatable)' })
            .option('name', { type: 'string', describe: 'list name (default: the zone file name); block again with the same name to replace it atomically' })
            .option('both', { type: 'boolean', default: false, describe: 'also drop what the guest sends to these prefixes' })
            .option('list', { type: 'boolean', default: false, describe: 'show the saved lists and where they apply' })
            .option('dry-run', { type: 'boolean', default: false, describe: 'print the nft transaction instead of applying and saving it' })
            .option('json', { type: 'boolean', default: false })
            .example('$0 block web1 --zone /etc/vif-guard/zones/cn.zone', 'drop everything from cn.zone\'s ~8,600 prefixes to guest web1')
            .example('$0 block vif3.0 --cidr 198.51.100.0/24 --cidr 2001:db8:bad::/48 --name abuse', 'block two prefixes for one vif')
            .example('$0 block --list', 'what is blocked, for whom'),
        async (args) => {
          if (args.list) set(await runBlockList(args.json));
          else if (!args.target) throw new VifGuardError('INVALID_INPUT', 'say which guest or vif to block for (or --list)');
          else set(await runBlock(args.target, { zones: args.zone.map(String), cidrs: args.cidr.map(String), name: args.name, both: args.both, dryRun: args['dry-run'], json: args.json }));
        },
      )
      .command(
        'unblock <target>',
        'Remove a guest\'s or vif\'s blocklists (all, or the one named by --name)',
        (y) =>
          y
            .positional('target', { type: 'string', demandOption: true })
            .option('name', { type: 'string', describe: 'only this list' })
            .option('dry-run', { type: 'boolean', default: false, describe: 'print the nft transaction instead of applying it' })
            .option('json', { type: 'boolean', default: false })
            .example('$0 unblock web1 --name cn', 'stop blocking cn.zone for web1'),
        async (args) => set(await runUnblock(String(args.target), { name: args.name, dryRun: args['dry-run'], json: args.json })),
      )
      .command(
        'demo-agent <action>',
        false,
        (y) =>
          y
            .positional('action', { choices: ['listen', 'send'] as const, demandOption: true })
            .option('port', { type: 'number', array: true, default: [] as number[] })
            .option('port6', { type: 'number', array: true, default: [] as number[] })
            .option('seconds', { type: 'number', default: 4 })
            .option('ready-file', { type: 'string' })
            .option('stop-file', { type: 'string' })
            .option('from', { type: 'string', default: '0.0.0.0' })
            .option('sport', { type: 'number', default: 0 })
            .option('to', { type: 'string', default: '' })
            .option('dport', { type: 'number', default: 0 })
            .option('token', { type: 'string', default: '' }),
        async (args) => {
          if (args.action === 'listen') await listen(args.port, Math.min(args.seconds, 30), args['ready-file'], args.port6, args['stop-file']);
          else await send({ from: args.from, sport: args.sport, to: args.to, dport: args.dport, token: args.token });
        },
      )
      .command(
        'check-config [files..]',
        'Parse domU configs (xl and xm syntax) and show each vif\'s protection',
        (y) =>
          y
            .positional('files', { type: 'string', array: true, describe: 'config files (default: domU configs in xen_config_dir)' })
            .option('json', { type: 'boolean', default: false, describe: 'print the parsed vifs as JSON' })
            .example('$0 check-config', 'validate every domU config under /etc/xen')
            .example('$0 check-config /etc/xen/vm01.cfg --json', 'show one guest\'s vifs as JSON'),
        async (args) => set(await checkConfig((args.files as string[] | undefined) ?? [], args.json)),
      )
      .command(
        'remove-rules',
        'Remove every vif-guard chain, jump and table (leaves all other rules untouched)',
        (y) =>
          y
            .option('dry-run', { type: 'boolean', default: false, describe: 'print the payload instead of applying it' })
            .example('$0 remove-rules --dry-run', 'show what uninstalling the rules would remove'),
        async (args) => set(await removeRules(args['dry-run'])),
      )
      .demandCommand(1, 'Say which command to run.')
      .strict()
      .help()
      .version(version())
      .fail((message, error) => {
        throw error ?? new VifGuardError('INVALID_INPUT', `${message} (see vif-guard --help)`);
      })
      .parseAsync();
    return status;
  } catch (thrown) {
    const error = toVifGuardError(thrown);
    process.stderr.write(`vif-guard: ${error.shortMessage}\n`);
    if (error.details && process.env.VIF_GUARD_DEBUG) process.stderr.write(`${error.details}\n`);
    return exitCodeFor(error);
  }
}

// No top-level await: the bundle is CommonJS, so V8 can load it from a code cache (build.mjs).
void main(hideBin(process.argv)).then((code) => {
  process.exitCode = code;
});
