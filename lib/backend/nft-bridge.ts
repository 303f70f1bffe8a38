import { VifGuardError } from '../errors.js';
import type { Runner } from '../runner.js';
import { addressRange, ipv6ToInt, parseAddress } from '../guest/validate.js';
import { BLOCK_ANY_PROTOCOL, blockNames, blockSets, bridgePort, hookText, LEARNED_SETS, parsePortComment, type ChainShape, type CommentFields, type DropClass } from '../rules/bridge.js';
import type { BridgeBlock, BridgePort, BridgeSpec } from '../rules/types.js';
import type { Counter } from './save-parse.js';

/*
 * vif-guard's nft table `bridge vif_guard`, owned whole (rules/bridge.ts has the layout):
 * - NOTRACK for switched guest traffic. It cannot live in iptables' raw table: br_netfilter turns
 *   PACKET_OTHERHOST into PACKET_HOST before the IPv4 PREROUTING hooks run, so raw PREROUTING cannot
 *   tell a frame the bridge switches from one dom0 routes or NATs (which must stay tracked).
 * - Per-port checks as set elements. The `guarded_<digest>` set names the layout version and its
 *   elements carry each port's configuration as a comment, so a hook reads one small set, not the
 *   whole table, and changes only elements.
 */
export const NFT_TABLE = 'vif_guard';

export interface LiveBridgePort extends BridgePort {
  readonly fields: CommentFields | undefined;
  /** Elements derived from the comment (a hook's read), not read from the sets (the whole table). */
  readonly fromComment?: boolean;
  /** Whether the `blocked` set holds it, when the sets were read (it keeps the port from teaching the fast path). */
  readonly inBlocked?: boolean;
}

export interface LiveBridge {
  readonly exists: boolean;
  /** Digest of the layout found (from the `guarded_<digest>` set name). */
  readonly digest: string | undefined;
  /** The nftables backend's table (IP checks included), not only layer 2. */
  readonly ip: boolean;
  readonly ports: ReadonlyMap<string, LiveBridgePort>;
  /** The NOTRACK MAC set's elements. */
  readonly macs: readonly string[];
  /** Port -> class -> drops (only from a full listing). */
  readonly counters: ReadonlyMap<string, ReadonlyMap<DropClass, Counter>>;
  /** Every chain's hook and rule verdicts (only from a full listing: doctor compares them with chainShapes). */
  readonly chains?: ReadonlyMap<string, ChainShape>;
  /** Every named set and map of the table (only from a full listing: doctor looks for ones no port uses). */
  readonly sets?: ReadonlySet<string>;
}

export const ABSENT: LiveBridge = { exists: false, digest: undefined, ip: false, ports: new Map(), macs: [], counters: new Map() };

type Elem = unknown;
interface NftItem {
  set?: { name?: string; table?: string; elem?: Elem[] };
  chain?: { name?: string; table?: string; hook?: string; prio?: number; policy?: string };
  rule?: { chain?: string; table?: string; expr?: readonly Record<string, unknown>[] };
}

/** The verdict a rule as `nft -j` prints it ends in, named as ruleVerdict names the rule vif-guard wrote. */
export function exprVerdict(expr: readonly Record<string, unknown>[]): string {
  const last = expr.at(-1) ?? {};
  if ('vmap' in last) return 'vmap';
  for (const kind of ['jump', 'goto'] as const) if (kind in last) return `${kind} ${(last[kind] as { target?: string } | null)?.target ?? '?'}`;
  return (['accept', 'drop', 'return'] as const).find((verdict) => verdict in last) ?? '-';
}

/** Each of vif-guard's chains in the listing with its hook and its rules' verdicts; empty when it lists sets alone. */
function chainShapesOf(items: readonly NftItem[], ours: (table: string | undefined) => boolean): Map<string, ChainShape> {
  const shapes = new Map<string, { hook: string | undefined; verdicts: string[] }>();
  for (const { chain } of items) {
    if (!chain?.name || !ours(chain.table)) continue;
    shapes.set(chain.name, { hook: chain.hook === undefined ? undefined : hookText(chain.hook, chain.prio ?? 0, chain.policy ?? 'accept'), verdicts: [] });
  }
  for (const { rule } of items) if (rule?.chain && ours(rule.table)) shapes.get(rule.chain)?.verdicts.push(exprVerdict(rule.expr ?? []));
  return shapes;
}

/** An element as nft -j prints it -> the text vif-guard writes for it (`"vif1.0" . 10.0.0.0/24`). */
function elementText(elem: Elem): { text: string; ifname: string | undefined; comment?: string; counter?: Counter } | undefined {
  const value = (v: unknown): string | undefined => {
    if (typeof v === 'string') return v;
    const prefix = (v as { prefix?: { addr?: string; len?: number } } | null)?.prefix;
    return prefix?.addr !== undefined ? `${prefix.addr}/${prefix.len ?? ''}` : undefined;
  };
  const wrapped = (elem as { elem?: { val?: unknown; comment?: string; counter?: { packets?: number; bytes?: number } } } | null)?.elem;
  const val = wrapped ? wrapped.val : elem;
  const extra = {
    ...(wrapped?.comment !== undefined ? { comment: wrapped.comment } : {}),
    ...(wrapped?.counter ? { counter: { packets: wrapped.counter.packets ?? 0, bytes: wrapped.counter.bytes ?? 0 } } : {}),
  };
  const concat = (val as { concat?: unknown[] } | null)?.concat;
  if (Array.isArray(concat)) {
    const parts = concat.map(value);
    if (parts.some((part) => part === undefined) || typeof parts[0] !== 'string') return undefined;
    return { text: parts.join(' . '), ifname: parts[0], ...extra };
  }
  const single = value(val);
  return single === undefined ? undefined : { text: single, ifname: single, ...extra };
}

/** A port's elements as vif-guard would have written them, from the configuration in its comment. */
function portFromComment(ifname: string, comment: string | undefined): LiveBridgePort | undefined {
  const fields = comment === undefined ? undefined : parsePortComment(comment);
  if (!fields || fields.addresses === undefined) return undefined;
  try {
    const addresses = fields.addresses.map((cidr) => parseAddress(cidr, { source: `bridge ${NFT_TABLE} element ${ifname}` }));
    // The comment as it is in the kernel (with its blocklist digest), not as this port would now be written.
    return { ...bridgePort({ ifname, guest: fields.guest, bridge: fields.bridge, mac: fields.mac, addresses, key: fields.key }), comment: comment ?? '', fields };
  } catch {
    return undefined;
  }
}

/** A port known by its comment; its elements are derived only if this port changes (a hook touches one of thousands). */
function lazyPort(ifname: string, comment: string, fields: CommentFields): LiveBridgePort {
  let derived: LiveBridgePort | undefined;
  const derive = (): LiveBridgePort => {
    derived ??= portFromComment(ifname, comment);
    if (!derived) throw new VifGuardError('APPLY', `bridge ${NFT_TABLE}: cannot read port ${ifname}'s record ${JSON.stringify(comment)}; run vif-guard sync`);
    return derived;
  };
  return {
    ifname,
    comment,
    fields,
    fromComment: true,
    mac: fields.mac,
    get v4() {
      return derive().v4;
    },
    get v6() {
      return derive().v6;
    },
  };
}

/**
 * The table as vif-guard last wrote it, from each port's record (ifname -> comment): what a hook
 * reads from its cache file. undefined when a record cannot say everything (then nft is asked).
 */
export function bridgeFromRecords(digest: string, records: Readonly<Record<string, string>>): LiveBridge | undefined {
  const ports = new Map<string, LiveBridgePort>();
  for (const [ifname, comment] of Object.entries(records)) {
    const fields = parsePortComment(comment);
    if (!fields || fields.addresses === undefined) return undefined;
    ports.set(ifname, lazyPort(ifname, comment, fields));
  }
  return { exists: true, digest, ip: true, ports, macs: macsOf(ports.values()), counters: new Map() };
}

/**
 * Parse `nft -j` output: the guarded set alone (a hook's read), or the whole table. With the whole
 * table the sets themselves are the truth; a lone guarded set is read through its comments, and
 * `complete` is false when a comment cannot say everything (then the caller reads the table).
 */
export function parseBridgeJson(texts: readonly string[]): LiveBridge & { readonly complete: boolean } {
  const items = texts.flatMap((text) => (JSON.parse(text) as { nftables?: NftItem[] }).nftables ?? []);
  const ours = (table: string | undefined) => table === undefined || table === NFT_TABLE;
  const sets = new Map<string, NonNullable<ReturnType<typeof elementText>>[]>();
  for (const item of items) {
    if (!item.set?.name || !ours(item.set.table)) continue;
    sets.set(item.set.name, (item.set.elem ?? []).flatMap((elem) => elementText(elem) ?? []));
  }
  const shapes = chainShapesOf(items, ours);
  const chains = [...shapes.keys()];
  const guardedName = [...sets.keys()].find((name) => /^guarded_[0-9a-f]{12}$/.test(name));
  if (!guardedName && chains.length === 0 && sets.size === 0) return { ...ABSENT, complete: true };
  const whole = sets.has('v4');
  const blocked = new Set((sets.get('blocked') ?? []).map((element) => element.text));
  const byPort = (name: string) => {
    const map = new Map<string, string[]>();
    for (const element of sets.get(name) ?? []) {
      if (!element.ifname) continue;
      const rest = element.text.slice(element.ifname.length + 3);
      map.set(element.ifname, [...(map.get(element.ifname) ?? []), rest]);
    }
    return map;
  };
  // A port's addresses: its hosts (hash sets) and its prefixes (interval sets).
  const both = (hosts: Map<string, string[]>, nets: Map<string, string[]>) => {
    for (const [ifname, list] of nets) hosts.set(ifname, [...(hosts.get(ifname) ?? []), ...list]);
    return hosts;
  };
  const p64 = new Map([...byPort('v6p64')].map(([ifname, networks]) => [ifname, networks.map((network) => `${network}/64`)]));
  const [v4, v6, portMac] = [both(byPort('v4'), byPort('v4net')), both(both(byPort('v6'), p64), byPort('v6net')), byPort('port_mac')];
  const ports = new Map<string, LiveBridgePort>();
  let complete = true;
  for (const element of guardedName ? (sets.get(guardedName) ?? []) : []) {
    const ifname = element.text;
    const fields = element.comment === undefined ? undefined : parsePortComment(element.comment);
    if (whole) {
      const inBlocked = sets.has('blocked') ? blocked.has(ifname) : undefined;
      ports.set(ifname, { ifname, mac: portMac.get(ifname)?.[0], v4: v4.get(ifname) ?? [], v6: v6.get(ifname) ?? [], comment: element.comment ?? '', fields, inBlocked });
      continue;
    }
    if (!fields || fields.addresses === undefined) {
      complete = false;
      continue;
    }
    ports.set(ifname, lazyPort(ifname, element.comment ?? '', fields));
  }
  const counters = new Map<string, Map<DropClass, Counter>>();
  for (const [name, elements] of sets) {
    const cls = /^cnt_([a-z0-9_]+)$/.exec(name)?.[1] as DropClass | undefined;
    if (!cls) continue;
    for (const element of elements) {
      if (!element.counter || !element.ifname) continue;
      const perPort = counters.get(element.ifname) ?? new Map<DropClass, Counter>();
      perPort.set(cls, element.counter);
      counters.set(element.ifname, perPort);
    }
  }
  return {
    exists: true,
    digest: guardedName?.slice('guarded_'.length),
    ip: chains.some((name) => name.startsWith('to_guest_')),
    ports,
    // A hook's read has no macs set: the ports' own MACs are what vif-guard put there.
    macs: whole ? (sets.get('macs') ?? []).map((element) => element.text) : macsOf(ports.values()),
    counters,
    ...(shapes.size > 0 ? { chains: shapes, sets: new Set(sets.keys()) } : {}),
    complete,
  };
}

const quote = (value: string) => `"${value}"`;
const add = (set: string, elements: readonly string[]) => (elements.length ? [`add element bridge ${NFT_TABLE} ${set} { ${elements.join(', ')} }`] : []);
/** Delete that cannot fail on an element someone else already removed: add it first (same transaction). */
const remove = (set: string, elements: readonly string[]) => (elements.length ? [...add(set, elements), `delete element bridge ${NFT_TABLE} ${set} { ${elements.join(', ')} }`] : []);

interface PortElements {
  readonly guarded: string[];
  readonly macPorts: string[];
  readonly portMac: string[];
  readonly v4: string[];
  readonly v4net: string[];
  readonly v6: string[];
  readonly v6p64: string[];
  readonly v6net: string[];
  readonly nd6: string[];
  readonly nd6p64: string[];
  readonly nd6net: string[];
  readonly blocked: string[];
}

/**
 * A port's addresses by the set they go to: host addresses (the hash sets, and the fast path's),
 * IPv6 /64s (looked up masked, in a hash) and every other prefix (the interval sets).
 * parseBridgeJson puts them back together.
 */
function classify(addresses: readonly string[]): { hosts: string[]; p64: string[]; nets: string[] } {
  const out = { hosts: [] as string[], p64: [] as string[], nets: [] as string[] };
  for (const address of addresses) {
    if (!address.includes('/')) out.hosts.push(address);
    else if (address.includes(':') && address.endsWith('/64')) out.p64.push(address.slice(0, -3));
    else out.nets.push(address);
  }
  return out;
}

/** 128-bit integers as nft reads them for a raw payload field (neighbour advertisement targets). */
const hex = (n: bigint) => `0x${n.toString(16).padStart(32, '0')}`;
const hex128 = (address: string) => hex(ipv6ToInt(address));

/** An IPv6 prefix (`2001:db8::/56`) as the range of those integers it covers. */
function hex128Range(cidr: string): string {
  const [address = '', length = '128'] = cidr.split('/');
  return addressRange({ family: 6, address, prefix: Number(length), cidr }).map(hex).join('-');
}

/** Whether the port has a blocklist: in the `blocked` set when the sets were read, else by its record or spec. */
function isBlocked(port: BridgePort): boolean {
  const live = port as LiveBridgePort;
  return live.inBlocked ?? (port.block !== undefined || live.fields?.block !== undefined);
}

function elementsOf(port: BridgePort, ip: boolean): PortElements {
  const name = quote(port.ifname);
  const [a4, a6] = [classify(port.v4), classify(ip ? port.v6 : [])];
  const of = (list: readonly string[]) => list.map((address) => `${name} . ${address}`);
  return {
    guarded: [`${name}${port.comment ? ` comment ${quote(port.comment)}` : ''}`],
    macPorts: port.mac ? [name] : [],
    portMac: port.mac ? [`${name} . ${port.mac}`] : [],
    v4: of(a4.hosts),
    v4net: of(a4.nets),
    v6: of(a6.hosts),
    v6p64: of(a6.p64),
    v6net: of(a6.nets),
    nd6: a6.hosts.map((address) => `${name} . ${hex128(address)}`),
    nd6p64: a6.p64.map((address) => `${name} . ${hex128(address)}`),
    nd6net: a6.nets.map((cidr) => `${name} . ${hex128Range(cidr)}`),
    // The fast path (rules/bridge.ts) is learned; what it needs written is which ports have a blocklist.
    blocked: ip && isBlocked(port) ? [name] : [],
  };
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && (a.every((x, i) => x === b[i]) || a.every((x) => b.includes(x)));

/** The same MAC and addresses (in any order): a cheap check before building element texts. */
function sameElements(a: BridgePort, b: BridgePort, ip: boolean): boolean {
  return a.mac === b.mac && sameList(a.v4, b.v4) && (!ip || (sameList(a.v6, b.v6) && isBlocked(a) === isBlocked(b)));
}

/**
 * Nothing to send for this port: the same record (a port this change does not touch), or the same
 * record text and elements. A port read through its record alone (a hook's read) is its record.
 */
export function portUnchanged(live: LiveBridgePort, desired: BridgePort, ip: boolean): boolean {
  return live === desired || (live.comment === desired.comment && (live.fromComment === true || sameElements(live, desired, ip)));
}

/** Whether the live port holds exactly the elements vif-guard would write for it. */
export function portMatches(live: BridgePort | undefined, desired: BridgePort, ip: boolean): boolean {
  if (!live) return false;
  const [a, b] = [elementsOf(live, ip), elementsOf(desired, ip)];
  return SETS.every((key) => a[key].length === b[key].length && a[key].every((element) => b[key].includes(element)));
}

const SETS: readonly (keyof PortElements)[] = ['guarded', 'macPorts', 'portMac', 'v4', 'v4net', 'v6', 'v6p64', 'v6net', 'nd6', 'nd6p64', 'nd6net', 'blocked'];
const SET_NAME = (key: keyof PortElements, digest: string) =>
  ({ guarded: `guarded_${digest}`, macPorts: 'mac_ports', portMac: 'port_mac', v4: 'v4', v4net: 'v4net', v6: 'v6', v6p64: 'v6p64', v6net: 'v6net', nd6: 'nd6', nd6p64: 'nd6p64', nd6net: 'nd6net', blocked: 'blocked' })[key];
const macsOf = (ports: Iterable<BridgePort>) => [...new Set([...ports].flatMap((port) => (port.mac ? [port.mac] : [])))].sort();

const T = `bridge ${NFT_TABLE}`;

/** Remove a port's blocklist objects (its lists had this digest); each step works whether or not the object is still there. */
function removeBlock(ifname: string, digest: string): string[] {
  const n = blockNames(ifname, digest);
  return [
    `add chain ${T} ${n.to}`,
    `add chain ${T} ${n.from}`,
    `add element ${T} block_to { ${quote(ifname)} : jump ${n.to} }`,
    `delete element ${T} block_to { ${quote(ifname)} }`,
    `add element ${T} block_from { ${quote(ifname)} : jump ${n.from} }`,
    `delete element ${T} block_from { ${quote(ifname)} }`,
    ...[n.to, n.from].flatMap((chain) => [`flush chain ${T} ${chain}`, `delete chain ${T} ${chain}`]),
    ...deleteSets(n),
  ];
}

const declareSet = ([set, type]: [string, string]) => `add set ${T} ${set} { type ${type}; flags interval; }`;
const deleteSets = (n: ReturnType<typeof blockNames>) => blockSets(n).flatMap((pair) => [declareSet(pair), `delete set ${T} ${pair[0]}`]);

/**
 * Create or replace a port's blocklist in one transaction: the sets of the new lists (named after
 * their digest) are filled, the port's chains are rewritten to match on them, and the sets of the
 * lists it replaces (`before`) are deleted whole; no frame meets the port without a list.
 */
function writeBlock(ifname: string, block: BridgeBlock, before?: string): string[] {
  const n = blockNames(ifname, block.digest);
  const elements = block.elements();
  const content: Record<string, readonly string[]> = { [n.in4]: elements.in4, [n.in6]: elements.in6, [n.out4]: elements.out4, [n.out6]: elements.out6 };
  return [
    // Flushed too, in case a set of that name is left from a transaction this one repairs (new sets are empty).
    ...blockSets(n).flatMap((pair) => [declareSet(pair), `flush set ${T} ${pair[0]}`]),
    ...[[n.to, block.rules.to], [n.from, block.rules.from]].flatMap(([chain, rules]) => [`add chain ${T} ${chain}`, `flush chain ${T} ${chain}`, ...(rules as string[]).map((rule) => `add rule ${T} ${chain} ${rule}`)]),
    `add element ${T} block_to { ${quote(ifname)} : jump ${n.to} }`,
    `add element ${T} block_from { ${quote(ifname)} : jump ${n.from} }`,
    ...blockSets(n).flatMap(([set]) => add(set, (content[set] ?? []).map((prefix) => `${prefix}${BLOCK_ANY_PROTOCOL}`))),
    // After the chains' flush: no rule refers to the old sets any more.
    ...(before !== undefined && before !== block.digest ? deleteSets(blockNames(ifname, before)) : []),
  ];
}

function fullTable(desired: BridgeSpec): string {
  const lines = [`table bridge ${NFT_TABLE} {`, ...desired.body, '}'];
  const all = desired.ports.map((port) => elementsOf(port, desired.ip));
  for (const key of SETS) lines.push(...add(SET_NAME(key, desired.digest), all.flatMap((elements) => elements[key])));
  lines.push(...add('macs', macsOf(desired.ports)));
  for (const port of desired.ports) if (desired.ip && port.block) lines.push(...writeBlock(port.ifname, port.block));
  return lines.join('\n');
}

/** Dynamic sets (`cnt_*` counters, `log_*` budgets) where a removed port leaves an element behind. */
function counterSets(desired: BridgeSpec | undefined, live: LiveBridge): string[] {
  const names = new Set<string>();
  for (const line of desired?.body ?? []) {
    const match = /^ {2}set ((?:cnt|log)_[a-z0-9_]+) /.exec(line);
    if (match?.[1]) names.add(match[1]);
  }
  return live.digest === desired?.digest ? [...names] : [];
}

/**
 * The nft script (one atomic transaction) that turns live into desired; empty when nothing changes.
 * A new layout (first run, upgrade, changed settings) replaces the table; otherwise only the changed
 * ports' elements move, so other guests' counters and log budgets are untouched.
 */
export function planBridge(live: LiveBridge, desired: BridgeSpec | undefined): string {
  if (!desired) return live.exists ? `delete table bridge ${NFT_TABLE}\n` : '';
  if (!live.exists || live.digest !== desired.digest) {
    return `table bridge ${NFT_TABLE} {}\ndelete table bridge ${NFT_TABLE}\n${fullTable(desired)}\n`;
  }
  const lines: string[] = [];
  const wanted = new Map(desired.ports.map((port) => [port.ifname, port]));
  const removed = new Map<keyof PortElements, string[]>(SETS.map((key) => [key, []]));
  const added = new Map<keyof PortElements, string[]>(SETS.map((key) => [key, []]));
  const gone: string[] = [];
  // What the fast path learned may no longer hold once a port it knows changes or goes.
  let stale = false;
  for (const ifname of new Set([...live.ports.keys(), ...wanted.keys()])) {
    const before = live.ports.get(ifname);
    const after = wanted.get(ifname);
    if (before !== undefined && after !== undefined && portUnchanged(before, after, desired.ip)) continue;
    if (before !== undefined) stale = true;
    const old = before ? elementsOf(before, desired.ip) : undefined;
    const now = after ? elementsOf(after, desired.ip) : undefined;
    for (const key of SETS) {
      const [have, want] = [old?.[key] ?? [], now?.[key] ?? []];
      const wantSet = new Set(want);
      const haveSet = new Set(have);
      for (const element of have) if (!wantSet.has(element)) removed.get(key)?.push(element);
      for (const element of want) if (!haveSet.has(element)) added.get(key)?.push(element);
    }
    if (before && !after) gone.push(quote(ifname));
  }
  // Blocklists: removed with their port (or their last list), rewritten when their digest changes.
  const blockChanges: string[] = [];
  for (const ifname of new Set([...live.ports.keys(), ...wanted.keys()])) {
    const before = live.ports.get(ifname)?.fields?.block;
    const after = wanted.get(ifname)?.block;
    if (!desired.ip || before === after?.digest) continue;
    if (after) blockChanges.push(...writeBlock(ifname, after, before));
    else if (before) blockChanges.push(...removeBlock(ifname, before));
  }
  for (const key of SETS) lines.push(...remove(SET_NAME(key, desired.digest), removed.get(key) ?? []));
  // A removed port's drop counters and log budgets go with it; a port that comes back starts from zero.
  for (const set of counterSets(desired, live)) lines.push(...remove(set, gone));
  for (const key of SETS) lines.push(...add(SET_NAME(key, desired.digest), added.get(key) ?? []));
  lines.push(...blockChanges);
  // Flushed in the same transaction: no frame meets the new elements with the old learned ones.
  // A flush names no element, so nft need not list the host's interfaces to parse one.
  if (desired.ip && (stale || blockChanges.length > 0)) lines.push(...LEARNED_SETS.map((set) => `flush set ${T} ${set}`));
  const [haveMacs, wantMacs] = [live.macs, macsOf(desired.ports)];
  const [haveSet, wantSet] = [new Set(haveMacs), new Set(wantMacs)];
  lines.push(...remove('macs', haveMacs.filter((mac) => !wantSet.has(mac))), ...add('macs', wantMacs.filter((mac) => !haveSet.has(mac))));
  return lines.length ? `${lines.join('\n')}\n` : '';
}

async function list(runner: Runner, args: readonly string[]): Promise<string | undefined> {
  const result = await runner.run('nft', ['-j', 'list', ...args]);
  if (result.exitCode === 0) return result.stdout;
  if (/No such file or directory/.test(result.stderr)) return undefined;
  throw new VifGuardError('APPLY', `nft list ${args.join(' ')} failed: ${result.stderr.trim().split('\n')[0] ?? ''}`);
}

/**
 * The live table. A hook reads only the guarded set of the layout it expects (one small listing,
 * fast with thousands of guests); the whole table is read when that set is missing or cannot be
 * read from its comments alone, and for counters (`full`: status, doctor, sync).
 */
export async function readBridge(runner: Runner, expected: Pick<BridgeSpec, 'digest' | 'ip'> | undefined, full = false): Promise<LiveBridge> {
  if (!full && expected !== undefined) {
    const text = await list(runner, ['set', 'bridge', NFT_TABLE, `guarded_${expected.digest}`]);
    if (text !== undefined) {
      // The digest names the layout, so the mode is the expected one.
      const live = parseBridgeJson([text]);
      if (live.complete) return { ...live, ip: expected.ip };
    }
  }
  const text = await list(runner, ['table', 'bridge', NFT_TABLE]);
  return text === undefined ? ABSENT : parseBridgeJson([text]);
}

/**
 * Every element vif-guard reads back to repair drift (sync), without the counter and log-budget
 * sets a full listing also returns. nft in interactive mode lists several sets in one process: each
 * line of its input is a command of its own, with its own cache (a script of several `list set`
 * keeps only the last set's, nft 1.0.6), and prints one JSON document. At 4,000 guests nft takes
 * ~170 ms of CPU to print them (gmp conversions, element by element), so the sets are split between
 * two processes that run side by side, about equal in elements: node itself is mostly waiting then
 * (sync's configs are read meanwhile, a noop's spec is built meanwhile). Their 1.2 MB of output is
 * spooled to files. One JSON document per set, or undefined: a set that is missing prints nothing,
 * and an nft without interactive mode fails; either way parseBridgeSets lists the whole table instead.
 */
export async function listBridgeSets(runner: Runner, expected: Pick<BridgeSpec, 'digest' | 'ip'>): Promise<readonly string[] | undefined> {
  const groups = [
    [`guarded_${expected.digest}`, 'v4', 'v4net', 'mac_ports', 'macs', ...(expected.ip ? ['blocked'] : [])],
    ['port_mac', ...(expected.ip ? ['v6', 'v6p64', 'v6net'] : [])],
  ];
  const listed = await Promise.all(
    groups.map(async (names) => {
      const input = names.map((name) => `list set bridge ${NFT_TABLE} ${name}\n`).join('');
      const result = await runner.run('nft', ['-j', '-i'], { input, spool: true });
      const texts = result.exitCode === 0 ? result.stdout.split('\n').filter((line) => line.startsWith('{')) : [];
      return texts.length === names.length && result.stderr.trim() === '' ? texts : undefined;
    }),
  );
  return listed.some((texts) => texts === undefined) ? undefined : listed.flatMap((texts) => texts ?? []);
}

/** The listing as the live table; undefined (a set missing, nft failed): the whole table, listed now. */
export async function parseBridgeSets(runner: Runner, expected: Pick<BridgeSpec, 'digest' | 'ip'>, texts: readonly string[] | undefined): Promise<LiveBridge> {
  if (texts === undefined) return readBridge(runner, undefined, true);
  return { ...parseBridgeJson(texts), ip: expected.ip };
}

/** The line of nft's stderr that says what went wrong (nft prints the offending input around it). */
export function nftErrorLine(stderr: string): string | undefined {
  return stderr.split('\n').find((line) => line.includes('Error'));
}

export async function applyBridge(runner: Runner, script: string, timeoutSeconds = 30): Promise<void> {
  if (script === '') return;
  const result = await runner.run('nft', ['-f', '-'], { input: script, timeout: timeoutSeconds * 1000 });
  if (result.exitCode !== 0) {
    const first = result.timedOut
      ? `timed out after ${timeoutSeconds}s (${script.split('\n').length} lines)`
      : nftErrorLine(result.stderr) ?? (result.stderr.trim() || (result.exitCode >= 128 ? 'killed before it committed' : `exit ${result.exitCode}`));
    throw new VifGuardError('APPLY', `nft -f failed: ${first}`, { details: `${result.stderr}\n${script}` });
  }
}
