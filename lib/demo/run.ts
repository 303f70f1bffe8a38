import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from '../runner.js';
import { VifGuardError } from '../errors.js';
import { DemoLab, hookPath } from './lab.js';
import { demoFlows, type Flow } from './flows.js';

export interface DemoRow {
  readonly id: string;
  readonly what: string;
  readonly kind: Flow['kind'];
  readonly expected: 'passes' | 'blocked';
  readonly before: 'passed' | 'blocked';
  readonly after: 'passed' | 'blocked';
  readonly ok: boolean;
}

export interface DemoResult {
  readonly rows: DemoRow[];
  readonly ok: boolean;
  readonly seconds: number;
}

const LISTEN_SECONDS = 4;

async function phase(lab: DemoLab, runner: Runner, flows: readonly Flow[], progress: (line: string) => void): Promise<Set<string>> {
  const cli = process.argv[1] ?? '';
  const receivers = new Map<string, string>([['dom0', lab.dom0], ...lab.guests.map((g): [string, string] => [g.name, g.ns])]);
  const ports = (name: string) => [...new Set(flows.filter((f) => f.receivers.includes(name)).map((f) => String(f.dport)))];
  const listeners = [...receivers].filter(([name]) => ports(name).length > 0).map(([name, ns]) => {
    const ready = join(lab.dir, `ready-${ns}-${Date.now()}`);
    const args = ['netns', 'exec', ns, process.execPath, cli, 'demo-agent', 'listen', '--ready-file', ready, '--seconds', String(LISTEN_SECONDS), ...ports(name).flatMap((p) => ['--port', p])];
    return { name, ready, done: runner.run('ip', args, { timeout: (LISTEN_SECONDS + 10) * 1000 }) };
  });
  const deadline = Date.now() + 8000;
  while (!listeners.every((l) => existsSync(l.ready))) {
    if (Date.now() > deadline) throw new VifGuardError('INTERNAL', 'demo listeners did not start within 8 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (const flow of flows) {
    const guest = lab.guest(flow.from);
    const result = await runner.run('ip', ['netns', 'exec', guest.ns, process.execPath, cli, 'demo-agent', 'send', '--from', flow.bind, '--sport', String(flow.sport), '--to', flow.to, '--dport', String(flow.dport), '--token', flow.id], { timeout: 10_000 });
    if (result.exitCode !== 0) progress(`could not send ${flow.id}: ${result.stderr.trim().split('\n').pop() ?? ''}`);
  }
  const arrived = new Set<string>();
  for (const listener of listeners) {
    const result = await listener.done;
    for (const line of result.stdout.split('\n')) {
      if (!line.includes('"token"')) continue;
      const { token } = JSON.parse(line) as { token: string };
      const flow = flows.find((f) => f.id === token);
      if (flow?.receivers.includes(listener.name)) arrived.add(token);
    }
  }
  return arrived;
}

/** Build the lab, attack before and after protecting the guests through the real vif-up hook, and tear it all down. */
export async function runDemo(runner: Runner, progress: (line: string) => void): Promise<DemoResult> {
  const started = Date.now();
  if (process.getuid?.() !== 0) throw new VifGuardError('INVALID_INPUT', 'the demo builds network namespaces: run it as root');
  const lab = new DemoLab(runner);
  let cleaning: Promise<void> | undefined;
  const cleanup = () => (cleaning ??= lab.destroy());
  // `on`, not `once`: execa's signal-exit re-raises the signal when it finds itself the only listener,
  // which would kill the process before the namespaces are gone.
  const onSignal = (signal: NodeJS.Signals) => {
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    progress('building a dom0 in network namespaces: xenbr0 with web (vif1.0), db (vif2.0) and a hostile guest evil (vif3.0)');
    await lab.build();
    for (const guest of lab.guests) await lab.ip('-n', guest.ns, 'route', 'add', 'default', 'dev', 'eth0');
    const flows = demoFlows((name) => lab.guest(name).address, lab.dom0Ip);
    progress('sending every flow without protection');
    const before = await phase(lab, runner, flows, progress);
    for (const guest of lab.guests) {
      progress(`online ${guest.vif}: running the vif-up hook for ${guest.name} (ip=${guest.address})`);
      const args = ['netns', 'exec', lab.dom0, 'env', ...lab.env, process.execPath, hookPath('vif-up'), '--command', 'online', '--dev', guest.vif, '--type-if', 'vif', '--ip', guest.address, '--bridge', 'xenbr0', '--guest', guest.name];
      const result = await runner.run('ip', args, { timeout: 40_000 });
      if (result.exitCode !== 0) throw new VifGuardError('APPLY', `the vif-up hook failed for ${guest.vif}: ${result.stdout.trim() || result.stderr.trim()}`);
      const said = result.stderr.trim().split('\n').pop();
      if (said) progress(`  hook: ${said.replace(/^vif-guard: /, '')}`);
    }
    progress('sending every flow again, with protection');
    const after = await phase(lab, runner, flows, progress);
    const rows = flows.map((flow): DemoRow => {
      const expected = flow.kind === 'legitimate' ? 'passes' : 'blocked';
      const afterState = after.has(flow.id) ? 'passed' : 'blocked';
      return { id: flow.id, what: flow.what, kind: flow.kind, expected, before: before.has(flow.id) ? 'passed' : 'blocked', after: afterState, ok: (afterState === 'passed') === (expected === 'passes') };
    });
    return { rows, ok: rows.every((row) => row.ok), seconds: (Date.now() - started) / 1000 };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cleanup();
  }
}
