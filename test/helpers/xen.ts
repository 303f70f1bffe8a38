import { $ } from 'zx';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Dom0Lab } from './netns.js';
import type { Variant } from './env.js';
import { writeClientWrappers } from '../fixtures/xenstore-clients.mjs';

const CACHE = join(tmpdir(), 'vif-guard-test-xen-utils-common');
const STANDIN = resolve('test/fixtures/xenstored-standin.mjs');
const IN_DOM0 = resolve('test/fixtures/in-dom0.sh');

/**
 * Debian's real hotplug scripts, fetched at test time (never committed): `apt-get download
 * xen-utils-common` and `dpkg -x`. Returns the unpacked root, whose etc/xen/scripts holds vif-bridge.
 */
export async function stockXenRoot(): Promise<string> {
  const root = join(CACHE, 'root');
  if (existsSync(join(root, 'etc/xen/scripts/vif-bridge'))) return root;
  mkdirSync(CACHE, { recursive: true });
  const download = await $({ cwd: CACHE })`apt-get download xen-utils-common`.nothrow();
  if (download.exitCode !== 0) {
    throw new Error(`apt-get download xen-utils-common failed (run apt-get update first): ${download.stderr}`);
  }
  const deb = (await $({ cwd: CACHE })`ls -1`).stdout.split('\n').find((name) => name.endsWith('.deb'));
  if (!deb) throw new Error('apt-get download left no .deb');
  await $`dpkg -x ${join(CACHE, deb)} ${root}`;
  return root;
}

/**
 * xenstore for a fake dom0: Debian's real clients (test/fixtures/xenstore-clients.mjs), through
 * wrappers in `bin` that point them at a stand-in daemon (test/fixtures/xenstored-standin.mjs)
 * serving the directory tree `store`, which the test writes directly. Xen's own daemons cannot run
 * without a hypervisor.
 */
export async function startXenstore(store: string, bin: string, socket: string): Promise<ChildProcess> {
  writeClientWrappers(bin, socket);
  const daemon = spawn(process.execPath, [STANDIN, socket, store], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(daemon, 'exit').then(([code]) => Promise.reject(new Error(`xenstored stand-in exited (${String(code)})`)));
  await Promise.race([once(daemon.stdout as NodeJS.ReadableStream, 'data'), exited, once(daemon, 'error').then(([error]) => Promise.reject(error as Error))]);
  return daemon;
}

export interface VifNodes {
  readonly ip?: string;
  readonly mac?: string;
  readonly bridge?: string;
  readonly vifname?: string;
}

export interface HotplugResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A Xen dom0 without Xen: the lab's dom0 namespace, the stock scripts, vif-guard installed by install.sh. */
export class FakeXenHost {
  readonly root = mkdtempSync(join(tmpdir(), 'vif-guard-xen-'));
  readonly xsRoot = join(this.root, 'xs');
  readonly configPath = join(this.root, 'vif-guard.conf');
  /** vif-guard's saved state (blocklists, ...), never the host's /var/lib. */
  readonly stateDir = join(this.root, 'state');
  /** The xenstore clients' directory (real clients, talking to the stand-in daemon over xsRoot). */
  readonly xenstoreBin = join(this.root, 'xenstore-bin');
  /** The stand-in daemon's socket: sync finds it in XENSTORED_PATH, as libxenstore does. */
  readonly xenstoredSocket = join(this.root, 'xenstored.socket');
  private stockRoot = '';
  private xenstored: ChildProcess | undefined;

  constructor(readonly lab: Dom0Lab, readonly variant: Variant | 'nftables') {}

  /** The iptables variant to read foreign rules (and any vif-guard leftovers) with. */
  get iptables(): Variant {
    return this.variant === 'nftables' ? 'nft' : this.variant;
  }

  /**
   * The bridge table's rules and its static sets, without what traffic changes (the per-port
   * counter and log-budget sets, counters): equal before and after a rebuild.
   */
  async bridgeState(): Promise<string> {
    const terse = (await this.lab.inDom0('nft', '-t', 'list', 'table', 'bridge', 'vif_guard')).stdout.replace(/counter packets \d+ bytes \d+/g, 'counter');
    const sets = [...terse.matchAll(/^\tset ((?:guarded_[0-9a-f]+)|macs|mac_ports|port_mac|v4|v4net|v6|v6p64|v6net|bl_\w+) \{/gm)].map((match) => match[1] ?? '');
    // Elements as sorted JSON: nft lists interval sets in insertion order.
    const listings = await Promise.all(
      sets.sort().map(async (set) => {
        const json = JSON.parse((await this.lab.inDom0('nft', '-j', 'list', 'set', 'bridge', 'vif_guard', set)).stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
        return `${set}: ${(json.nftables.find((item) => item.set)?.set?.elem ?? []).map((elem) => JSON.stringify(elem)).sort().join(' ')}`;
      }),
    );
    return [terse.split('\n').sort().join('\n'), ...listings].join('\n');
  }

  /** The live `bridge vif_guard` table as text, or '' when absent. */
  async bridgeTable(): Promise<string> {
    const result = await this.lab.inDom0('nft', 'list', 'table', 'bridge', 'vif_guard').catch(() => ({ stdout: '' }));
    return result.stdout;
  }

  async setup(config = ''): Promise<void> {
    this.stockRoot = await stockXenRoot();
    for (const dir of ['stage', 'log/xen', 'run', 'xs']) mkdirSync(join(this.root, dir), { recursive: true });
    this.xenstored = await startXenstore(this.xsRoot, this.xenstoreBin, this.xenstoredSocket);
    symlinkSync(this.stockRoot, join(this.root, 'xen'));
    const install = await $({ env: { ...process.env, DESTDIR: join(this.root, 'stage') } })`./install.sh --prefix /opt/vif-guard --no-deps`.nothrow();
    if (install.exitCode !== 0) throw new Error(`install.sh failed: ${install.stdout}${install.stderr}`);
    this.writeConfig(`[general]\nbackend = ${this.variant}\n${config}`);
  }

  /** Extra environment for every hook and CLI run (VIF_GUARD_BIN_DIR, ...). */
  private readonly env: Record<string, string> = {};

  /**
   * `ebtables` and `ebtables-restore` are ebtables-nft for vif-guard here, whatever the host's
   * alternative: this kernel has no legacy ebtables tables.
   */
  useEbtablesNft(): void {
    const dir = join(this.root, 'ebtables-nft-bin');
    mkdirSync(dir, { recursive: true });
    for (const tool of ['ebtables', 'ebtables-restore']) symlinkSync('/usr/sbin/xtables-nft-multi', join(dir, tool));
    this.addBinDir(dir);
  }

  /** Tools in this directory win over the system's for vif-guard, before those of any directory added earlier. */
  private addBinDir(dir: string): void {
    const dirs = (this.env.VIF_GUARD_BIN_DIR ?? '').split(':').filter(Boolean);
    if (!dirs.includes(dir)) this.env.VIF_GUARD_BIN_DIR = [dir, ...dirs].join(':');
  }

  /**
   * Log every run of these tools by vif-guard (then run the real one): which path a hook took shows in
   * which tools it ran. Returns the reader of the log, which each call starts afresh.
   */
  traceTools(tools: readonly string[]): () => string[] {
    const dir = join(this.root, 'traced-bin');
    const log = join(this.root, 'traced.log');
    mkdirSync(dir, { recursive: true });
    writeFileSync(log, '');
    for (const tool of tools) {
      const real = ['/usr/sbin', '/sbin', '/usr/bin'].map((d) => join(d, tool)).find((path) => existsSync(path));
      if (!real) throw new Error(`${tool} is not installed`);
      writeFileSync(join(dir, tool), `#!/bin/sh\necho ${tool} >> ${log}\nexec ${real} "$@"\n`, { mode: 0o755 });
    }
    this.addBinDir(dir);
    return () => readFileSync(log, 'utf8').split('\n').filter(Boolean);
  }

  writeConfig(text: string): void {
    writeFileSync(this.configPath, text);
  }

  xsWrite(path: string, value: string): void {
    const abs = path.startsWith('/') ? path : `/local/domain/0/${path}`;
    mkdirSync(join(this.xsRoot, abs), { recursive: true });
    writeFileSync(join(this.xsRoot, abs, '.value'), value);
  }

  xsRead(path: string): string | undefined {
    const abs = path.startsWith('/') ? path : `/local/domain/0/${path}`;
    const file = join(this.xsRoot, abs, '.value');
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  }

  xsRemove(path: string): void {
    const abs = path.startsWith('/') ? path : `/local/domain/0/${path}`;
    rmSync(join(this.xsRoot, abs), { recursive: true, force: true });
  }

  /** What libxl writes for a vif (xen-hotplug.md 5.1): backend nodes, and the domain's name. */
  defineVif(domid: number, devid: number, name: string, nodes: VifNodes): void {
    const base = `backend/vif/${domid}/${devid}`;
    this.xsWrite(`/local/domain/${domid}/name`, name);
    this.xsWrite(`${base}/frontend`, `/local/domain/${domid}/device/vif/${devid}`);
    this.xsWrite(`${base}/hotplug-status`, '');
    for (const [key, value] of Object.entries(nodes)) if (value !== undefined) this.xsWrite(`${base}/${key}`, value);
  }

  /** Run a script in /etc/xen/scripts exactly as libxl does: execvp with its argv and environment. */
  async hotplug(script: string, argv: string[], domid: number, devid: number, extraEnv: Record<string, string> = {}): Promise<HotplugResult> {
    const env = {
      PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${this.xenstoreBin}`,
      VIF_GUARD_CONFIG: this.configPath,
      VIF_GUARD_STATE_DIR: this.stateDir,
      script: `/etc/xen/scripts/${script}`,
      XENBUS_TYPE: 'vif',
      XENBUS_PATH: `backend/vif/${domid}/${devid}`,
      XENBUS_BASE_PATH: 'backend',
      netdev: '',
      vif: `vif${domid}.${devid}`,
      ...this.env,
      ...extraEnv,
    };
    const envArgs = Object.entries(env).map(([key, value]) => `${key}=${value}`);
    const result = await $`ip netns exec ${this.lab.dom0} unshare -m --propagation private ${IN_DOM0} ${this.root} env -i ${envArgs} /etc/xen/scripts/${script} ${argv} </dev/null`
      .timeout('45s')
      .nothrow();
    return { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
  }

  /** `online` for each of these domains' vif 0 through the stock vif-bridge, one after another; throws with the hotplug log on the first failure. */
  async onlineAll(domids: readonly number[]): Promise<void> {
    for (const domid of domids) {
      const result = await this.hotplug('vif-bridge', ['online', 'type_if=vif'], domid, 0);
      if (result.exitCode !== 0) throw new Error(`online of domain ${domid} failed (exit ${result.exitCode}):\n${this.hotplugLog()}`);
    }
  }

  /** The vif-guard CLI inside the dom0 namespace, with this host's xenstore double, config and lock. */
  async cli(args: string[], extraEnv: Record<string, string> = {}): Promise<HotplugResult> {
    const env = {
      PATH: `${this.xenstoreBin}:/usr/sbin:/usr/bin:/sbin:/bin`,
      XENSTORED_PATH: this.xenstoredSocket,
      VIF_GUARD_CONFIG: this.configPath,
      VIF_GUARD_LOCK: join(this.root, 'run', 'vif-guard.lock'),
      VIF_GUARD_STATE_DIR: this.stateDir,
      ...this.env,
      ...extraEnv,
    };
    const envArgs = Object.entries(env).map(([key, value]) => `${key}=${value}`);
    const result = await $`ip netns exec ${this.lab.dom0} env ${envArgs} ${process.execPath} dist/bundle/vif-guard.cjs ${args}`.timeout('60s').nothrow();
    return { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
  }

  /** The CLI as an admin on this dom0 runs it: inside the mount namespace that shows the staged /etc. */
  async cliMounted(args: string[], extraEnv: Record<string, string> = {}): Promise<HotplugResult> {
    const env = { PATH: `${this.xenstoreBin}:/usr/sbin:/usr/bin:/sbin:/bin`, XENSTORED_PATH: this.xenstoredSocket, VIF_GUARD_CONFIG: this.configPath, VIF_GUARD_STATE_DIR: this.stateDir, ...this.env, ...extraEnv };
    const envArgs = Object.entries(env).map(([key, value]) => `${key}=${value}`);
    const result = await $`ip netns exec ${this.lab.dom0} unshare -m --propagation private ${IN_DOM0} ${this.root} env -i ${envArgs} /opt/vif-guard/sbin/vif-guard ${args}`
      .timeout('60s')
      .nothrow();
    return { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
  }

  /** Any command inside the dom0 namespace and its mount namespace (private /run, so private locks). */
  async inMountNs(argv: string[], extraEnv: Record<string, string> = {}): Promise<HotplugResult> {
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', VIF_GUARD_CONFIG: this.configPath, ...this.env, ...extraEnv };
    const envArgs = Object.entries(env).map(([key, value]) => `${key}=${value}`);
    const result = await $`ip netns exec ${this.lab.dom0} unshare -m --propagation private ${IN_DOM0} ${this.root} env -i ${envArgs} ${argv} </dev/null`.timeout('120s').nothrow();
    return { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
  }

  /** A file in the staged installation (writable from the host side, seen at the same path in the mount namespace). */
  stagePath(path: string): string {
    return join(this.root, 'stage', path);
  }

  hotplugLog(): string {
    const file = join(this.root, 'log/xen/xen-hotplug.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  async save(table: 'filter' | 'raw', counters = false): Promise<string> {
    const args = counters ? ['-c', '-t', table] : ['-t', table];
    return (await this.lab.inDom0(`iptables-${this.iptables}-save`, ...args)).stdout;
  }

  async restore(payload: string): Promise<void> {
    await $`ip netns exec ${this.lab.dom0} iptables-${this.iptables}-restore --noflush --counters < ${this.writeTemp(payload)}`;
  }

  private writeTemp(text: string): string {
    const file = join(this.root, `payload-${Date.now()}-${Math.random().toString(16).slice(2)}`);
    writeFileSync(file, text);
    return file;
  }

  cleanup(): void {
    this.xenstored?.kill();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** iptables-save lines that vif-guard does not own, with counters: must never change. */
export function foreignLines(save: string): string[] {
  return save
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#') && !line.includes('vif-guard'))
    .filter((line) => !/^:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) /.test(line));
}
