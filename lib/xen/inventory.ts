import { VifGuardError, describeOrigin } from '../errors.js';
import type { GuestPort } from '../guest/model.js';
import { isGuestName, parseAddressList, parseIfname, parseMac } from '../guest/validate.js';
import type { Runner } from '../runner.js';
import type { DomuNetwork } from './vif-spec.js';
import { openXenstoreSocket, type XenstoreSocket } from './xs-socket.js';

/** A vif of a running domain as xenstore shows it (raw values, not yet validated). */
export interface RunningVif {
  readonly domid: string;
  readonly devid: string;
  readonly nodes: Readonly<Record<string, string>>;
  readonly name: string | undefined;
}

const NODES = ['vifname', 'ip', 'mac', 'bridge', 'type'] as const;
const CHUNK = 400;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/** `xenstore-list -p` / `xenstore-read -p` print `path/child` and `path: value`; a value with a newline is refused. */
async function xsMany(runner: Runner, tool: 'xenstore-list' | 'xenstore-read', paths: readonly string[]): Promise<string[]> {
  const lines: string[] = [];
  for (const batch of chunks(paths)) {
    if (batch.length === 0) continue;
    const result = await runner.run(tool, ['-p', ...batch], { timeout: 20_000 });
    if (result.exitCode !== 0) {
      throw new VifGuardError('XENSTORE', `${tool} failed: ${result.stderr.trim().split('\n')[0] ?? ''}`);
    }
    lines.push(...result.stdout.split('\n').filter((line) => line !== ''));
  }
  return lines;
}

/** The vifs found, with `value(vif, node)` for each of NODES (raw; undefined where the node is missing) and each domain's name. */
function assemble(vifPaths: readonly string[], value: (vif: number, node: number) => string | undefined, name: (domid: string) => string | undefined): RunningVif[] {
  return vifPaths.map((path, vif) => {
    const [, , domid = '', devid = ''] = path.split('/');
    const nodes: Record<string, string> = {};
    NODES.forEach((node, n) => {
      const text = value(vif, n);
      if (text !== undefined) nodes[node] = text;
    });
    return { domid, devid, nodes, name: name(domid) };
  });
}

const VIF_PATH = /^backend\/vif\/\d+\/\d+$/;

/**
 * The same reads over xenstored's socket, pipelined on one connection (xs-socket.ts). Each vif's nodes
 * are read without listing them first: a missing one is a short ENOENT reply, cheaper for both sides
 * than a list of a vif's ~20 nodes (the clients need the list: one missing path fails a whole call).
 */
async function listOverSocket(xs: XenstoreSocket): Promise<RunningVif[]> {
  const [top] = await xs.directory(['backend/vif']);
  if (top === undefined) return [];
  const domids = top.filter((id) => /^\d+$/.test(id));
  const devices = await xs.directory(domids.map((domid) => `backend/vif/${domid}`));
  const vifPaths = domids.flatMap((domid, i) => (devices[i] ?? []).map((devid) => `backend/vif/${domid}/${devid}`)).filter((path) => VIF_PATH.test(path));
  // Vif v's node n at v * NODES.length + n, then the domains' names.
  const paths = [...vifPaths.flatMap((path) => NODES.map((node) => `${path}/${node}`)), ...domids.map((domid) => `/local/domain/${domid}/name`)];
  const read = await xs.read(paths);
  const named = new Map(domids.map((domid, i) => [domid, read[vifPaths.length * NODES.length + i]]));
  return assemble(vifPaths, (vif, node) => read[vif * NODES.length + node], (domid) => named.get(domid));
}

/**
 * Every vif of every running domain, from `backend/vif`: over xenstored's socket when there is one
 * (root's, as sync runs), else in a few calls of the clients (not one per node: sync must stay fast
 * with thousands of guests). Undefined when this host has neither.
 */
export async function listRunningVifs(runner: Runner): Promise<RunningVif[] | undefined> {
  const xs = await openXenstoreSocket();
  if (xs) {
    try {
      return await listOverSocket(xs);
    } finally {
      xs.close();
    }
  }
  if (!runner.which('xenstore-list') || !runner.which('xenstore-read')) return undefined;
  const top = await runner.run('xenstore-list', ['backend/vif'], { timeout: 20_000 });
  if (top.exitCode !== 0) {
    // No backend/vif at all is a dom0 with no guests; anything else means xenstore is unreadable.
    if (/could(n't| not) (list|read)/.test(top.stderr) || /No such file/.test(top.stderr)) return [];
    throw new VifGuardError('XENSTORE', `cannot read xenstore (xenstore-list backend/vif: ${top.stderr.trim()}); nothing was changed`);
  }
  const domids = top.stdout.split('\n').filter((id) => /^\d+$/.test(id));
  const vifPaths = (await xsMany(runner, 'xenstore-list', domids.map((d) => `backend/vif/${d}`))).filter((p) => VIF_PATH.test(p));
  const present = new Set(await xsMany(runner, 'xenstore-list', vifPaths));
  const wanted = vifPaths.flatMap((path) => NODES.map((node) => `${path}/${node}`)).filter((path) => present.has(path));
  const names = domids.map((d) => `/local/domain/${d}/name`);
  const values = new Map<string, string>();
  const invalid = new Set<string>();
  const asked = new Set([...wanted, ...names]);
  let last: string | undefined;
  for (const line of await xsMany(runner, 'xenstore-read', [...wanted, ...names])) {
    const match = /^(backend\/vif\/\d+\/\d+\/\w+|\/local\/domain\/\d+\/name): (.*)$/.exec(line);
    if (match?.[1] !== undefined && asked.has(match[1])) {
      last = match[1];
      values.set(match[1], match[2] ?? '');
    } else if (last) {
      invalid.add(last);
    }
  }
  return assemble(
    vifPaths,
    (vif, node) => {
      const path = `${vifPaths[vif] ?? ''}/${NODES[node] ?? ''}`;
      const value = values.get(path);
      return value !== undefined && invalid.has(path) ? `${value}\n...` : value;
    },
    (domid) => values.get(`/local/domain/${domid}/name`),
  );
}


export interface XenInventory {
  readonly ports: GuestPort[];
  readonly warnings: string[];
}

/**
 * The ports sync protects: each running vif (and its -emu tap for HVM ioemu nics) with the addresses
 * from its domU config when one names the domain (the admin's current intent), else from xenstore.
 * Any invalid value is an error and nothing is applied.
 */
export function buildXenInventory(running: readonly RunningVif[], configs: readonly DomuNetwork[]): XenInventory {
  const warnings: string[] = [];
  const byName = new Map<string, DomuNetwork>();
  for (const config of configs) {
    if (!config.name) continue;
    const other = byName.get(config.name);
    if (other) warnings.push(`domain ${config.name} is named in both ${other.file} and ${config.file}; using ${other.file}`);
    else byName.set(config.name, config);
  }
  const ports: GuestPort[] = [];
  for (const vif of running) {
    const base = `backend/vif/${vif.domid}/${vif.devid}`;
    const origin = (node: string) => ({ source: `xenstore ${base}/${node}` });
    const guest = vif.name && isGuestName(vif.name) ? vif.name : `domid-${vif.domid}`;
    const vifname = vif.nodes.vifname ? parseIfname(vif.nodes.vifname, 'vifname', origin('vifname')) : undefined;
    const ifname = vifname ?? parseIfname(`vif${vif.domid}.${vif.devid}`, 'vif', origin('vifname'));
    let addresses = parseAddressList(vif.nodes.ip ?? '', origin('ip'));
    const spec = vif.name ? byName.get(vif.name)?.vifs[Number(vif.devid)] : undefined;
    if (spec && spec.addresses.length > 0) {
      const fromXenstore = addresses.map((a) => a.cidr).join(' ');
      const fromConfig = spec.addresses.map((a) => a.cidr).join(' ');
      if (fromXenstore !== fromConfig) {
        warnings.push(`${ifname}: ip in ${describeOrigin(spec.origin)} (${fromConfig}) differs from the running domain's (${fromXenstore || 'none'}); using the config`);
      }
      addresses = [...spec.addresses];
    }
    const port: GuestPort = {
      ifname,
      guest,
      bridge: vif.nodes.bridge ? parseIfname(vif.nodes.bridge, 'bridge', origin('bridge')) : undefined,
      mac: vif.nodes.mac ? parseMac(vif.nodes.mac, origin('mac')) : undefined,
      addresses,
      key: `xen:${vif.domid}/${vif.devid}`,
    };
    ports.push(port);
    // HVM nics of type ioemu also get a vifD.N-emu tap (xen-hotplug.md 2.2).
    if (vif.nodes.type === 'vif_ioemu' || vif.nodes.type === 'ioemu') ports.push({ ...port, ifname: parseIfname(`${ifname}-emu`, 'vifname', origin('vifname')), key: undefined });
  }
  const seen = new Set<string>();
  for (const port of ports) {
    if (seen.has(port.ifname)) throw new VifGuardError('INVALID_INPUT', `two running vifs are both named ${port.ifname} (xenstore vifname); nothing was changed`);
    seen.add(port.ifname);
  }
  return { ports, warnings };
}
