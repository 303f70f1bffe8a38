#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadSettings } from '../config/load.js';
import { exitCodeFor, toVifGuardError } from '../errors.js';
import { DEFAULT_LOCK_PATH } from '../lock.js';
import { createRunner } from '../runner.js';
import { removeEverything } from '../core/engine.js';
import { findDomuConfigs, readDomuNetworks } from './check-config.js';

const log = (line: string) => process.stderr.write(`vif-guard: ${line}\n`);

async function checkConfig(files: string[], json: boolean): Promise<void> {
  const settings = loadSettings();
  const paths = files.length ? files : findDomuConfigs(settings.xenConfigDir);
  const networks = readDomuNetworks(paths);
  if (json) {
    process.stdout.write(`${JSON.stringify(networks.map((n) => ({ ...n, vifs: n.vifs.map((v) => ({ ...v, addresses: v.addresses.map((a) => a.cidr) })) })), null, 2)}\n`);
    return;
  }
  for (const network of networks) {
    for (const vif of network.vifs) {
      const addresses = vif.addresses.map((a) => a.cidr).join(' ') || '(none: unprotected unless unaddressed = block)';
      process.stdout.write(`${network.file}:${vif.origin.line ?? '?'}\t${network.name ?? '-'}\tvif ${vif.index}\t${vif.vifname ?? '(vifD.N)'}\t${vif.mac ?? '-'}\t${vif.bridge ?? 'xenbr0'}\t${addresses}\n`);
    }
  }
  log(`${paths.length} config file(s), ${networks.reduce((n, x) => n + x.vifs.length, 0)} vif(s), all valid`);
}

async function removeRules(dryRun: boolean): Promise<void> {
  const ctx = { runner: createRunner(), settings: loadSettings(), lockPath: process.env.VIF_GUARD_LOCK ?? DEFAULT_LOCK_PATH, log };
  const report = await removeEverything(ctx, dryRun);
  const removed = report.plans.flatMap((plan) => plan.removed.map((chain) => `${plan.table}/${chain}`));
  if (report.notrackScript) removed.push('nft bridge table vif_guard');
  log(`${dryRun ? 'would remove' : 'removed'} ${removed.length} chain(s) from iptables-${report.variant}${removed.length ? `: ${removed.join(', ')}` : ''}`);
}

export async function main(argv: string[]): Promise<number> {
  try {
    await yargs(argv)
      .scriptName('vif-guard')
      .usage('$0 <command> [options]\n\nAnti-spoofing for Xen vifs: only a guest\'s own addresses leave its vif.')
      .command(
        'check-config [files..]',
        'Parse domU configs (xl and xm syntax) and show each vif\'s protection',
        (y) => y.positional('files', { type: 'string', array: true, describe: 'config files (default: domU configs in xen_config_dir)' }).option('json', { type: 'boolean', default: false, describe: 'print the parsed vifs as JSON' }),
        async (args) => checkConfig((args.files as string[] | undefined) ?? [], args.json),
      )
      .command(
        'remove-rules',
        'Remove every vif-guard chain and jump rule (leaves all other rules untouched)',
        (y) => y.option('dry-run', { type: 'boolean', default: false, describe: 'print the iptables-restore payload instead of applying it' }),
        async (args) => removeRules(args['dry-run']),
      )
      .example('$0 check-config', 'validate every domU config under /etc/xen')
      .example('$0 check-config /etc/xen/vm01.cfg --json', 'show one guest\'s vifs as JSON')
      .example('$0 remove-rules --dry-run', 'show what uninstalling the rules would remove')
      .demandCommand(1, 'Say which command to run.')
      .strict()
      .help()
      .fail((message, error) => {
        throw error ?? new Error(message);
      })
      .parseAsync();
    return 0;
  } catch (thrown) {
    const error = toVifGuardError(thrown);
    process.stderr.write(`vif-guard: ${error.code === 'INTERNAL' && !(thrown instanceof Error && thrown.name === 'VifGuardError') ? (thrown as Error).message : error.shortMessage}\n`);
    return error.code === 'INTERNAL' ? 2 : exitCodeFor(error);
  }
}

process.exitCode = await main(hideBin(process.argv));
