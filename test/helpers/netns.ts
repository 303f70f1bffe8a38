import { $, type ProcessPromise } from 'zx';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';

$.verbose = false;
$.quiet = true;

export const PROBE = resolve('templates/probe.py');

/** A dom0 namespace with a bridge, and guest namespaces whose dom0 ends are named like vifs. Removed by destroy(). */
export class Dom0Lab {
  readonly id = randomBytes(3).toString('hex');
  readonly dom0 = `vgt-${this.id}-d0`;
  readonly bridge: string;
  readonly guests = new Map<string, Guest>();
  private readonly namespaces: string[] = [];

  constructor(readonly subnet = '10.77.0', bridge = 'xenbr0') {
    this.bridge = bridge;
  }

  get dom0Ip(): string {
    return `${this.subnet}.1`;
  }

  async create(): Promise<void> {
    await $`ip netns add ${this.dom0}`;
    this.namespaces.push(this.dom0);
    await this.inDom0('ip', 'link', 'set', 'lo', 'up');
    // A fixed MAC: otherwise the bridge takes its lowest port's MAC and changes as vifs come and go.
    await this.inDom0('ip', 'link', 'add', this.bridge, 'address', '02:00:00:00:0d:00', 'type', 'bridge');
    await this.inDom0('ip', 'addr', 'add', `${this.dom0Ip}/24`, 'dev', this.bridge);
    await this.inDom0('ip', 'link', 'set', this.bridge, 'up');
    // Per-namespace since Linux 5.3: this never touches the host's own value.
    await this.inDom0('sh', '-c', 'echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables; echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables');
  }

  /** A guest: namespace with eth0 at `address`, its dom0 end named `vif` (not yet on the bridge unless attach). */
  async addGuest(name: string, vif: string, hostByte: number, attach = false): Promise<Guest> {
    const ns = `vgt-${this.id}-${name}`;
    await $`ip netns add ${ns}`;
    this.namespaces.push(ns);
    await $`ip link add ${vif} netns ${this.dom0} type veth peer name eth0 netns ${ns}`;
    await $`ip -n ${ns} link set lo up`;
    await $`ip -n ${ns} addr add ${`${this.subnet}.${hostByte}/24`} dev eth0`;
    await $`ip -n ${ns} link set eth0 up`;
    if (attach) {
      await this.inDom0('ip', 'link', 'set', vif, 'master', this.bridge);
      await this.inDom0('ip', 'link', 'set', vif, 'up');
    }
    const mac = (await $`ip -n ${ns} -br link show eth0`).stdout.trim().split(/\s+/)[2] ?? '';
    const guest = { name, ns, vif, address: `${this.subnet}.${hostByte}`, mac };
    this.guests.set(name, guest);
    return guest;
  }

  guest(name: string): Guest {
    const guest = this.guests.get(name);
    if (!guest) throw new Error(`no guest ${name}`);
    return guest;
  }

  async bridgeMac(): Promise<string> {
    return (await this.inDom0('ip', '-br', 'link', 'show', this.bridge)).stdout.trim().split(/\s+/)[2] ?? '';
  }

  inDom0(...argv: string[]) {
    return $`ip netns exec ${this.dom0} ${argv}`;
  }

  inNs(ns: string, ...argv: string[]) {
    return $`ip netns exec ${ns} ${argv}`;
  }

  async destroy(): Promise<void> {
    for (const ns of this.namespaces.reverse()) await $`ip netns del ${ns}`.nothrow();
    this.namespaces.length = 0;
  }
}

export interface Guest {
  readonly name: string;
  readonly ns: string;
  readonly vif: string;
  readonly address: string;
  readonly mac: string;
}

export interface Datagram {
  readonly token: string;
  readonly src: string;
  readonly port: number;
}

/** Wait for the probe's {"ready":true} line (its sockets are open), bounded at 10 s. */
function ready(proc: ProcessPromise, what: string): Promise<void> {
  return new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start`)), 10_000);
    proc.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('"ready"')) {
        clearTimeout(timer);
        resolveReady();
      }
    });
  });
}

/** Start UDP listeners in a namespace (IPv4 ports, and IPv6 ports); resolves once they are bound. */
export async function listen(lab: Dom0Lab, ns: string, ports: number[], seconds: number, ports6: number[] = []): Promise<() => Promise<Datagram[]>> {
  const args = [...ports.flatMap((port) => ['--port', String(port)]), ...ports6.flatMap((port) => ['--port6', String(port)])];
  const proc: ProcessPromise = $`ip netns exec ${ns} python3 ${PROBE} listen ${args} --seconds ${seconds}`.nothrow();
  await ready(proc, `listener in ${ns}`);
  void lab;
  return async () => {
    const out = await proc;
    return out.stdout
      .split('\n')
      .filter((line) => line.includes('"token"'))
      .map((line) => JSON.parse(line) as Datagram);
  };
}

/** Capture every frame arriving on an interface in a namespace; resolves once the socket is open. */
export async function capture(ns: string, iface: string, seconds: number): Promise<() => Promise<string[]>> {
  const proc: ProcessPromise = $`ip netns exec ${ns} python3 ${PROBE} capture --iface ${iface} --seconds ${seconds}`.nothrow();
  await ready(proc, `capture in ${ns}`);
  return async () => (await proc).stdout.split('\n').filter((line) => line.includes('"hex"')).map((line) => (JSON.parse(line) as { hex: string }).hex);
}

/** Send a hand-built frame (lib/demo/frames.ts) from a namespace's interface. */
export async function sendHex(ns: string, iface: string, hex: string, count = 2): Promise<void> {
  await $`ip netns exec ${ns} python3 ${PROBE} send-hex --iface ${iface} --hex ${hex} --count ${count}`;
}

export interface Frame {
  readonly from: Guest;
  readonly dstMac: string;
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
  readonly token: string;
}

export async function sendFrame(lab: Dom0Lab, frame: Frame): Promise<void> {
  await lab.inNs(frame.from.ns, 'python3', PROBE, 'send', '--iface', 'eth0', '--dst-mac', frame.dstMac, '--src', frame.src, '--dst', frame.dst,
    '--sport', String(frame.sport), '--dport', String(frame.dport), '--token', frame.token);
}
