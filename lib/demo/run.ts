import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runner } from '../runner.js';
import { VifGuardError } from '../errors.js';
import { linkLocalFromMac } from '../guest/eui64.js';
import { DemoLab, hookPath, type DemoGuest } from './lab.js';
import { demoFlows, type Flow } from './flows.js';
import { ETHERTYPE, ethernet, ipv4Udp, ipv6MulticastMac, neighborAdvertisement, routerAdvertisement, toHex } from './frames.js';

export type Observed = 'passed' | 'blocked' | 'skipped';

export interface DemoRow {
  readonly id: string;
  readonly what: string;
  readonly kind: Flow['kind'];
  readonly expected: 'passes' | 'blocked';
  readonly before: Observed;
  readonly after: Observed;
  readonly ok: boolean;
}

export interface DemoResult {
  readonly rows: DemoRow[];
  readonly ok: boolean;
  readonly seconds: number;
}

const LISTEN_SECONDS = 15;
const FORGED_MAC = '02:66:66:66:66:66';

/** The raw-frame probe shipped next to the bundle (or in the source tree), when python3 can run it. */
function probePath(runner: Runner): string | undefined {
  if (!runner.which('python3')) return undefined;
  // Installed next to the bundle; in a source tree, templates/ from dist/bundle or dist/lib/demo.
  for (const candidate of [new URL('./probe.py', import.meta.url), new URL('../../templates/probe.py', import.meta.url), new URL('../../../templates/probe.py', import.meta.url)]) {
    const path = fileURLToPath(candidate);
    if (existsSync(path)) return path;
  }
  return undefined;
}

async function phase(lab: DemoLab, runner: Runner, flows: readonly Flow[], probe: string | undefined, progress: (line: string) => void): Promise<Map<string, Observed>> {
  const cli = process.argv[1] ?? '';
  const observed = new Map<string, Observed>();
  const receivers = new Map<string, string>([['dom0', lab.dom0], ...lab.guests.map((g): [string, string] => [g.name, g.ns])]);
  const udp = flows.filter((f) => f.via === 'udp' || f.via === 'mac' || f.via === 'arp-claim');
  const ports = (name: string, v6: boolean) => [...new Set(udp.filter((f) => f.receivers.includes(name) && f.to.includes(':') === v6).map((f) => String(f.dport)))];
  const stop = join(lab.dir, `stop-${Date.now()}`);
  const listeners = [...receivers].filter(([name]) => ports(name, false).length + ports(name, true).length > 0).map(([name, ns]) => {
    const ready = join(lab.dir, `ready-${ns}-${Date.now()}`);
    const args = ['netns', 'exec', ns, process.execPath, cli, 'demo-agent', 'listen', '--ready-file', ready, '--stop-file', stop, '--seconds', String(LISTEN_SECONDS),
      ...ports(name, false).flatMap((p) => ['--port', p]), ...ports(name, true).flatMap((p) => ['--port6', p])];
    return { name, ready, done: runner.run('ip', args, { timeout: (LISTEN_SECONDS + 10) * 1000 }) };
  });
  const db = lab.guest('db');
  const deadline = Date.now() + 8000;
  while (!listeners.every((l) => existsSync(l.ready))) {
    if (Date.now() > deadline) throw new VifGuardError('INTERNAL', 'demo listeners did not start within 8 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const send = async (guest: DemoGuest, flow: Flow) => {
    const result = await runner.run('ip', ['netns', 'exec', guest.ns, process.execPath, cli, 'demo-agent', 'send', '--from', flow.bind, '--sport', String(flow.sport), '--to', flow.to, '--dport', String(flow.dport), '--token', flow.id], { timeout: 10_000 });
    if (result.exitCode !== 0) progress(`could not send ${flow.id}: ${result.stderr.trim().split('\n').pop() ?? ''}`);
  };
  const sendRaw = async (ns: string, iface: string, frame: number[]) => {
    if (probe) await runner.run('ip', ['netns', 'exec', ns, 'python3', probe, 'send-hex', '--iface', iface, '--hex', toHex(frame)], { timeout: 10_000 });
  };
  for (const flow of flows) {
    const guest = lab.guest(flow.from);
    if (flow.raw && !probe) {
      observed.set(flow.id, 'skipped');
      continue;
    }
    if (flow.via === 'udp') await send(guest, flow);
    if (flow.via === 'mac') {
      await lab.ip('-n', guest.ns, 'link', 'set', 'eth0', 'address', FORGED_MAC);
      await send(guest, flow);
      await lab.ip('-n', guest.ns, 'link', 'set', 'eth0', 'address', guest.mac);
    }
    if (flow.via === 'arp-claim') {
      // Forget dom0, so the guest must ARP for it, from the stolen address it sends from.
      await lab.ip('-n', guest.ns, 'neigh', 'flush', 'dev', 'eth0');
      await lab.ip('-n', lab.dom0, 'neigh', 'flush', 'dev', 'xenbr0');
      await send(guest, flow);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const neigh = await lab.inNs(lab.dom0, ['ip', 'neigh', 'show', flow.bind]);
      observed.set(flow.id, neigh.stdout.includes(guest.mac) ? 'passed' : 'blocked');
    }
    if (flow.via === 'ra') {
      const web = lab.guest('web');
      const ll = linkLocalFromMac(guest.mac).address;
      await sendRaw(guest.ns, 'eth0', ethernet(ipv6MulticastMac('ff02::1'), guest.mac, ETHERTYPE.ipv6, routerAdvertisement(ll, guest.mac, '2001:db8:bad::')));
      await new Promise((resolve) => setTimeout(resolve, 1200));
      const routes = await lab.inNs(web.ns, ['ip', '-6', 'route', 'show', 'default']);
      observed.set(flow.id, routes.stdout.includes(ll) ? 'passed' : 'blocked');
      await lab.inNs(web.ns, ['ip', '-6', 'route', 'flush', 'default']);
      await lab.inNs(web.ns, ['ip', '-6', 'addr', 'flush', 'dev', 'eth0', 'scope', 'global', 'dynamic']);
    }
    if (flow.via === 'nd-claim') {
      // db knows web's IPv6 address; an unsolicited advertisement with the override flag replaces the MAC it has for it.
      const [db6, web] = [lab.guest('db'), lab.guest('web')];
      await lab.ip('-n', db6.ns, '-6', 'neigh', 'replace', flow.bind, 'lladdr', web.mac, 'dev', 'eth0', 'nud', 'stale');
      await sendRaw(guest.ns, 'eth0', ethernet(ipv6MulticastMac(flow.to), guest.mac, ETHERTYPE.ipv6, neighborAdvertisement(linkLocalFromMac(guest.mac).address, flow.to, flow.bind, guest.mac)));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const neigh = await lab.inNs(db6.ns, ['ip', '-6', 'neigh', 'show', flow.bind]);
      observed.set(flow.id, neigh.stdout.includes(guest.mac) ? 'passed' : 'blocked');
      await lab.inNs(db6.ns, ['ip', '-6', 'neigh', 'del', flow.bind, 'dev', 'eth0']);
    }
    if (flow.via === 'vlan' && probe) {
      // Captured on db's eth0: no VLAN device is needed to see whether a tagged frame arrived.
      const capture = runner.run('ip', ['netns', 'exec', db.ns, 'python3', probe, 'capture', '--iface', 'eth0', '--seconds', '1.5'], { timeout: 15_000 });
      await new Promise((resolve) => setTimeout(resolve, 500));
      await sendRaw(guest.ns, 'eth0', ethernet(db.mac, guest.mac, ETHERTYPE.ipv4, ipv4Udp(flow.bind, flow.to, flow.sport, flow.dport, flow.id), 100));
      const seen = (await capture).stdout.includes(Buffer.from(flow.id).toString('hex'));
      observed.set(flow.id, seen ? 'passed' : 'blocked');
    }
  }
  // Give the last datagrams a moment on the wire, then stop the listeners.
  await new Promise((resolve) => setTimeout(resolve, 300));
  writeFileSync(stop, '');
  for (const listener of listeners) {
    const result = await listener.done;
    for (const line of result.stdout.split('\n')) {
      if (!line.includes('"token"')) continue;
      const { token } = JSON.parse(line) as { token: string };
      const flow = flows.find((f) => f.id === token);
      if (flow && flow.via !== 'arp-claim' && flow.receivers.includes(listener.name)) observed.set(token, 'passed');
    }
  }
  for (const flow of flows) if (!observed.has(flow.id)) observed.set(flow.id, 'blocked');
  return observed;
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
    const probe = probePath(runner);
    if (!probe) progress('python3 or probe.py is missing: the neighbour-advertisement, router-advertisement and VLAN rows are skipped');
    for (const guest of lab.guests) await lab.ip('-n', guest.ns, 'route', 'add', 'default', 'dev', 'eth0');
    const flows = demoFlows((name) => lab.guest(name).address, (name) => lab.guest(name).address6, lab.dom0Ip);
    progress('sending every flow without protection');
    const before = await phase(lab, runner, flows, probe, progress);
    for (const guest of lab.guests) {
      progress(`online ${guest.vif}: running the vif-up hook for ${guest.name} (ip=${guest.address} ${guest.address6}, mac=${guest.mac})`);
      const args = ['netns', 'exec', lab.dom0, 'env', ...lab.env, process.execPath, hookPath('vif-up'), '--command', 'online', '--dev', guest.vif, '--type-if', 'vif',
        '--ip', `${guest.address} ${guest.address6}`, '--mac', guest.mac, '--bridge', 'xenbr0', '--guest', guest.name];
      const result = await runner.run('ip', args, { timeout: 40_000 });
      if (result.exitCode !== 0) throw new VifGuardError('APPLY', `the vif-up hook failed for ${guest.vif}: ${result.stdout.trim() || result.stderr.trim()}`);
      const said = result.stderr.trim().split('\n').pop();
      if (said) progress(`  hook: ${said.replace(/^vif-guard: /, '')}`);
    }
    progress('sending every flow again, with protection');
    const after = await phase(lab, runner, flows, probe, progress);
    const rows = flows.map((flow): DemoRow => {
      const expected = flow.kind === 'legitimate' ? 'passes' : 'blocked';
      const afterState = after.get(flow.id) ?? 'blocked';
      const ok = afterState === 'skipped' || (afterState === 'passed') === (expected === 'passes');
      return { id: flow.id, what: flow.what, kind: flow.kind, expected, before: before.get(flow.id) ?? 'blocked', after: afterState, ok };
    });
    return { rows, ok: rows.every((row) => row.ok), seconds: (Date.now() - started) / 1000 };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cleanup();
  }
}
