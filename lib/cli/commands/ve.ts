import { allow, deny, list, type VeChange } from '../../openvz/ve.js';
import { check } from '../../openvz/check.js';
import { createContext, log, printJson } from '../context.js';

function report(change: VeChange, json: boolean): number {
  if (json) {
    printJson(change);
    return 0;
  }
  for (const note of change.notes) log(note);
  if (change.command.length === 0) return 0;
  const verb = change.dryRun ? 'would run' : 'ran';
  log(`${verb}: ${change.command.map((arg) => (/[\s"]/.test(arg) ? `"${arg}"` : arg)).join(' ')}`);
  if (change.hostModules.length) log(`${change.dryRun ? 'would load' : 'loaded'} on the host: ${change.hostModules.join(' ')}`);
  log(`${change.target}: ${change.after.join(' ') || '(no iptables at all)'}`);
  if (change.restartNeeded) log(`the container is running: the new list applies after a restart (vzctl restart ${change.target.replace('container ', '')}, or --restart)`);
  return 0;
}

export async function runVe(action: string, target: string, names: string[], options: { restart: boolean; dryRun: boolean; json: boolean; rule: string | undefined }): Promise<number> {
  const base = createContext();
  const ctx = { runner: base.runner, settings: base.settings, log: base.log };
  if (action === 'allow') return report(await allow(ctx, target, names, options), options.json);
  if (action === 'deny') return report(await deny(ctx, target, names, options), options.json);
  if (action === 'list') {
    const result = list(ctx, target);
    if (options.json) printJson(result);
    else process.stdout.write(`${result.target}: ${result.tokens.join(' ') || '(none)'}\n  from ${result.source}\n`);
    return 0;
  }
  const findings = await check(ctx, target, options.rule);
  if (options.json) printJson({ ok: findings.every((f) => f.level === 'ok'), findings });
  else for (const finding of findings) process.stdout.write(`${finding.level === 'ok' ? 'ok     ' : 'PROBLEM'} ${finding.message}\n${finding.fix ? `        fix: ${finding.fix}\n` : ''}`);
  return findings.every((f) => f.level === 'ok') ? 0 : 1;
}
