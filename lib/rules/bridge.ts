import { shortDigest } from '../digest.js';
import { VifGuardError } from '../errors.js';
import type { Settings } from '../config/settings.js';
import { ipv4Addresses, ipv6Identity, type GuestPort } from '../guest/model.js';
import { addressRange, intToIpv4, ipv4ToInt, type GuestAddress } from '../guest/validate.js';
import type { BridgeBlock, BridgePort, BridgeSpec } from './types.js';

/*
 * vif-guard's nft table `bridge vif_guard` holds a fixed set of rules and one set element per guest
 * fact: `iifname . ip saddr @v4` instead of a chain per guest. Per-packet cost is a few hash and
 * pipapo lookups whatever the number of guests, and adding or removing a guest is an element
 * change, never a rule or chain change. That matters: with a chain per guest behind an `iifname vmap`
 * the kernel revalidates every chain reachable from the map on every commit (2 s per hook at 4,000
 * guests on 6.18, 2 minutes to load), while element changes commit in milliseconds.
 *
 * Two modes share the layout: `ip` (the nftables backend: MAC, ARP, ethertype, IPv4 and IPv6 checks,
 * both directions) and layer 2 only (the iptables backends keep the IP checks in iptables).
 */

/** Why a frame was dropped; each class has a per-port counter set `cnt_<class>` and a log budget set. */
export const L2_CLASSES = ['mac', 'ethertype', 'arp_mac', 'arp_ip'] as const;
export const IP_CLASSES = ['src', 'dhcps', 'src6', 'ra', 'redirect', 'dhcp6s', 'nd_target', 'dst', 'dst6', 'blocked'] as const;
export type DropClass = (typeof L2_CLASSES)[number] | (typeof IP_CLASSES)[number];

const ETHERTYPES = ['ip', 'arp', 'ip6'];
/** Longest element comment the kernel stores (NFT_USERDATA_MAXLEN is 256, with a type-length header). */
const COMMENT_MAX = 250;

/**
 * Remove prefixes covered by another of the same family (and duplicates): pipapo sets reject
 * overlapping intervals. Sorted sweep, so a zone of thousands of prefixes costs milliseconds; the
 * input order of the survivors is kept.
 */
export function collapse(addresses: readonly GuestAddress[]): GuestAddress[] {
  // Host addresses only (almost every guest): duplicates are the only possible overlap.
  if (addresses.every((address) => address.prefix === (address.family === 4 ? 32 : 128))) {
    const seen = new Set<string>();
    return addresses.filter((address) => !seen.has(address.cidr) && seen.add(address.cidr) !== undefined);
  }
  const keep = new Set<number>();
  // IPv4 in plain numbers (exact below 2^53): a country zone is thousands of prefixes.
  const v4 = addresses
    .map((address, index) => ({ index, address }))
    .filter(({ address }) => address.family === 4)
    .map(({ index, address }) => {
      const start = ipv4ToInt(address.address);
      return { index, start, end: start + 2 ** (32 - address.prefix) - 1 };
    })
    .sort((a, b) => a.start - b.start || b.end - a.end || a.index - b.index);
  let end4 = -1;
  for (const { index, start, end } of v4) {
    if (end <= end4 && start >= 0) continue;
    keep.add(index);
    end4 = end;
  }
  for (const family of [6] as const) {
    const ranges = addresses
      .map((address, index) => ({ index, range: address.family === family ? addressRange(address) : undefined }))
      .filter((entry): entry is { index: number; range: [bigint, bigint] } => entry.range !== undefined)
      // Widest first among equal starts, so a covering prefix is seen before what it covers.
      .sort((a, b) => (a.range[0] < b.range[0] ? -1 : a.range[0] > b.range[0] ? 1 : a.range[1] > b.range[1] ? -1 : a.range[1] < b.range[1] ? 1 : a.index - b.index));
    let end = -1n;
    for (const { index, range } of ranges) {
      if (range[1] <= end) continue;
      keep.add(index);
      end = range[1];
    }
  }
  return addresses.filter((_address, index) => keep.has(index));
}

const plain = (address: GuestAddress) => ((address.family === 4 && address.prefix === 32) || (address.family === 6 && address.prefix === 128) ? address.address : address.cidr);

/** nft identifiers from interface names, reversibly: `_` -> `__`, `-` -> `_h`, `.` -> `_d`. */
export function encodeIfname(ifname: string): string {
  return ifname.replace(/_/g, '__').replace(/-/g, '_h').replace(/\./g, '_d');
}

/**
 * A blocked port's own chains, and its sets for the lists with this digest (see writeBlock in
 * backend/nft-bridge.ts). The sets are named after the lists' digest: a replaced list is a new set,
 * filled while the old one still drops, and the old one is deleted whole in the same transaction.
 * Emptying a set of this type element by element rewrites its lookup tables per element (a flush of
 * the bench's zone took ~1.7 s), where deleting the set frees it at once.
 */
export function blockNames(ifname: string, digest: string): { in4: string; in6: string; out4: string; out6: string; to: string; from: string } {
  if (!/^[0-9a-f]{1,32}$/.test(digest)) throw new VifGuardError('APPLY', `bridge vif_guard: not a blocklist digest: ${JSON.stringify(digest)}; run vif-guard sync --rebuild`);
  const e = encodeIfname(ifname);
  return { in4: `bl_in4_${e}_${digest}`, in6: `bl_in6_${e}_${digest}`, out4: `bl_out4_${e}_${digest}`, out6: `bl_out6_${e}_${digest}`, to: `bli_${e}`, from: `blo_${e}` };
}

/**
 * A blocked port's prefix sets are keyed `address . protocol`, and every element covers every
 * protocol (BLOCK_ANY_PROTOCOL): the second field is there for nft, not for the match. Before any
 * transaction that adds or deletes elements, nft 1.0.6 reads every element of every single-field
 * interval set in the table (its overlap check), so with `ipv4_addr` interval sets each port holding
 * a country zone added ~15-20 ms to every hook, block and unblock on the host. It never reads a
 * concatenated set. The header's protocol field, not `meta l4proto`: a field that is always there
 * (`meta l4proto` fails to match an IPv6 packet whose extension headers nft cannot walk).
 */
export const BLOCK_SET_TYPES = { 4: 'ipv4_addr . inet_proto', 6: 'ipv6_addr . inet_proto' } as const;
export const BLOCK_ANY_PROTOCOL = ' . 0-255';

/** A blocked port's four prefix sets (blockNames) with their types. */
export const blockSets = (n: ReturnType<typeof blockNames>): [string, string][] => [[n.in4, BLOCK_SET_TYPES[4]], [n.in6, BLOCK_SET_TYPES[6]], [n.out4, BLOCK_SET_TYPES[4]], [n.out6, BLOCK_SET_TYPES[6]]];

/** The rules of a blocked port's two chains: drop from the listed sources to it, and (--both) from it to them. */
export function blockRules(ifname: string, digest: string, settings: Settings): { to: string[]; from: string[] } {
  const n = blockNames(ifname, digest);
  return {
    to: [...dropRules(settings, 'blocked', `ip saddr . ip protocol @${n.in4}`, { dev: 'oifname' }), ...dropRules(settings, 'blocked', `ip6 saddr . ip6 nexthdr @${n.in6}`, { dev: 'oifname' })],
    from: [...dropRules(settings, 'blocked', `ip daddr . ip protocol @${n.out4}`, { dev: 'iifname' }), ...dropRules(settings, 'blocked', `ip6 daddr . ip6 nexthdr @${n.out6}`, { dev: 'iifname' })],
  };
}

/** The elements one guarded port contributes, and the comment that records its configuration. */
export function bridgePort(port: GuestPort, block?: BridgeBlock): BridgePort {
  const v4 = collapse(ipv4Addresses(port));
  const v6 = collapse(ipv6Identity(port));
  return {
    ifname: port.ifname,
    mac: port.mac,
    v4: v4.map(plain),
    v6: v6.map(plain),
    comment: portComment(port, block?.digest),
    block,
  };
}

/** A port's record in layer 2 alone (the iptables backend): IPv4 for ARP only. */
export function layer2Port(port: GuestPort): BridgePort {
  return bridgePort({ ...port, addresses: ipv4Addresses(port) });
}

/** A port's blocklists as the bridge table needs them; the prefixes are parsed only if they must be written. */
export function bridgeBlock(ifname: string, digest: string, settings: Settings, load: () => { inbound: readonly GuestAddress[]; outbound: readonly GuestAddress[] }): BridgeBlock {
  return {
    digest,
    rules: blockRules(ifname, digest, settings),
    elements: () => {
      const { inbound, outbound } = load();
      return blockElements(inbound, outbound);
    },
  };
}

/**
 * IPv4 prefixes as the fewest interval elements: overlapping and adjacent prefixes merged into one
 * range (`a-b`), exact prefixes kept as such. A country zone lists thousands of adjacent /24s; nft's
 * parser and the kernel's interval set cost per element, so this is most of a blocklist's load time.
 */
export function mergeV4(addresses: readonly GuestAddress[]): string[] {
  // One sortable number per prefix, start * 64 + prefix length (exact below 2^53): a native numeric
  // sort, wider prefixes first among equal starts.
  const keys = new Float64Array(addresses.length);
  let n = 0;
  for (const address of addresses) {
    if (address.family !== 4) continue;
    keys[n] = ipv4ToInt(address.address) * 64 + address.prefix;
    n += 1;
  }
  const sorted = keys.subarray(0, n).sort();
  const out: string[] = [];
  let [from, to] = [-1, -2];
  const flush = () => {
    if (from < 0) return;
    const size = to - from + 1;
    const prefix = 32 - Math.log2(size);
    out.push(Number.isInteger(prefix) && from % size === 0 ? (prefix === 32 ? intToIpv4(from) : `${intToIpv4(from)}/${prefix}`) : `${intToIpv4(from)}-${intToIpv4(to)}`);
  };
  for (const key of sorted) {
    const start = Math.floor(key / 64);
    const end = start + 2 ** (32 - (key % 64)) - 1;
    if (from >= 0 && start <= to + 1) to = Math.max(to, end);
    else {
      flush();
      [from, to] = [start, end];
    }
  }
  flush();
  return out;
}

/** Set elements for prefixes to block: IPv4 merged into ranges, IPv6 with covered prefixes collapsed (interval sets reject overlaps). */
export function blockElements(inbound: readonly GuestAddress[], outbound: readonly GuestAddress[]): ReturnType<BridgeBlock['elements']> {
  const of6 = (list: readonly GuestAddress[]) => collapse(list.filter((address) => address.family === 6)).map(plain);
  return { in4: mergeV4(inbound), in6: of6(inbound), out4: mergeV4(outbound), out6: of6(outbound) };
}

/**
 * `g=<guest> b=<bridge> m=<mac> k=<key> a=<addresses>`: what a hook needs to rebuild or remove the port
 * without reading every set. Addresses that do not fit are written `a=*` (then the sets are read).
 */
export function portComment(port: GuestPort, blockDigest?: string): string {
  const head = `g=${port.guest} b=${port.bridge ?? '-'} m=${port.mac ?? '-'} k=${port.key ?? '-'} bl=${blockDigest ?? '-'}`;
  const full = `${head} a=${port.addresses.map((address) => address.cidr).join(',') || '-'}`;
  return full.length <= COMMENT_MAX ? full : `${head} a=*`;
}

export interface CommentFields {
  readonly guest: string;
  readonly bridge: string | undefined;
  readonly mac: string | undefined;
  readonly key: string | undefined;
  /** Digest of the port's blocklists, when it has any. */
  readonly block: string | undefined;
  /** undefined when the comment said `a=*`. */
  readonly addresses: readonly string[] | undefined;
}

export function parsePortComment(comment: string): CommentFields | undefined {
  // Records written before the fast path was learned also carry the interface's index (` i=7`).
  // The blocklist digest names the port's sets in nft scripts: hex or nothing, whatever the kernel holds.
  const match = /^g=(\S+) b=(\S+) m=(\S+) k=(\S+)(?: i=(?:\d+|-))? bl=(-|[0-9a-f]{1,32}) a=(\S+)$/.exec(comment);
  if (!match) return undefined;
  const [, guest = '-', bridge = '-', mac = '-', key = '-', block = '-', addresses = '-'] = match;
  const opt = (value: string) => (value === '-' ? undefined : value);
  return { guest, bridge: opt(bridge), mac: opt(mac), key: opt(key), block: opt(block), addresses: addresses === '*' ? undefined : addresses === '-' ? [] : addresses.split(',') };
}

interface Direction {
  readonly dev: 'iifname' | 'oifname';
}

function dropRules(settings: Settings, cls: DropClass, match: string, { dev }: Direction): string[] {
  const prefix = match ? `${match} ` : '';
  const lines: string[] = [];
  // One log budget per port and class (a dynamic set with a limit per element), like iptables' per-port LOG rules.
  if (settings.log) lines.push(`${prefix}add @log_${cls} { ${dev} limit rate ${settings.logPerMinute}/minute burst ${settings.logBurst} packets } log prefix "vifg-${cls}: " level warn`);
  lines.push(`${prefix}add @cnt_${cls} { ${dev} counter } drop`);
  return lines;
}

const chain = (name: string, rules: readonly string[], hook?: string) => [`  chain ${name} {`, ...(hook ? [`    ${hook}`] : []), ...rules.map((rule) => `    ${rule}`), '  }'];

const MASK64 = 'ffff:ffff:ffff:ffff::';
/**
 * A neighbour advertisement's target address: 16 bytes after the ICMPv6 type, code, checksum and
 * flags. nft 1.0.6 has no `icmpv6 taddr`, and a raw field cannot be looked up in an ipv6_addr set,
 * so the targets have sets of their own keyed on the raw field (elements are 128-bit integers).
 */
const ND_TARGET = '@th,64,128';
const ND_MASK64 = '0xffffffffffffffff0000000000000000';

/**
 * `return` when `key` (a port and an address, e.g. `iifname . ip saddr`) is one of the port's own:
 * a host address, or inside one of its prefixes. Every check of a port's addresses asks all of its
 * sets, so none can forget the interval set.
 */
const own4 = (key: string) => [`${key} @v4 return`, `${key} @v4net return`];
const own6 = (key: string, sets = { hosts: 'v6', p64: 'v6p64', nets: 'v6net' }, mask = MASK64) => [
  `${key} @${sets.hosts} return`,
  `${key} & ${mask} @${sets.p64} return`,
  `${key} @${sets.nets} return`,
];

/** Most elements a learned fast-path set holds; when full it learns nothing more, and the full checks still apply. */
export const LEARNED_MAX = 262144;

/**
 * What the full checks teach the fast path: a port's own host address (the hash sets, never a
 * prefix: a /64 would let a guest fill the set), with the port's MAC, from ports whose MAC is
 * known (any MAC passes the others), and nothing for a port with a blocklist. Each is a rule of its
 * own, without a verdict: a full set makes `add` fail, and that must not stop the `return` after it.
 */
const LEARN = {
  from4: 'iifname @mac_ports iifname != @blocked iifname . ip saddr @v4 add @fast4 { iif . ether saddr . ip saddr }',
  from6: 'iifname @mac_ports iifname != @blocked iifname . ip6 saddr @v6 add @fast6 { iif . ether saddr . ip6 saddr }',
  to4: 'oifname != @blocked oifname . ip daddr @v4 add @dst4 { oif . ip daddr }',
  to6: 'oifname != @blocked oifname . ip6 daddr @v6 add @dst6 { oif . ip6 daddr }',
};

/** The fast path's sets, flushed whenever something they learned may no longer hold. */
export const LEARNED_SETS = ['fast4', 'fast6', 'dst4', 'dst6'] as const;

/**
 * One rule per family. `th sport` is the first two bytes of any transport header, so everything but
 * a DHCP (v6) server reply passes here; the rest (a TCP port 67, an ICMP type 0 code 67, fragments,
 * whose transport header nft cannot load) meet the full checks, which accept what is the guest's own.
 * ICMPv6 always meets them (router advertisements, redirects, neighbour advertisements' targets).
 * Two rules instead of four: ~4% more frames per second through the bridge at 4,000 guests.
 */
const FAST_FROM = ['iif . ether saddr . ip saddr @fast4 th sport != 67', 'meta l4proto != ipv6-icmp iif . ether saddr . ip6 saddr @fast6 th sport != 547'];

/** The table's fixed part: sets (empty) and rules. Its digest names the guarded set and the base chains. */
export function bridgeSkeleton(settings: Settings, ip: boolean): { readonly digest: string; readonly body: readonly string[] } {
  const classes: DropClass[] = [...L2_CLASSES, ...(ip ? IP_CLASSES : [])];
  const from: Direction = { dev: 'iifname' };
  const to: Direction = { dev: 'oifname' };
  const types = [...ETHERTYPES, ...settings.extraEthertypes];
  const body = (d: string): string[] => [
    `  set guarded_${d} { type ifname; }`,
    '  set macs { type ether_addr; }',
    '  set mac_ports { type ifname; }',
    '  set port_mac { type ifname . ether_addr; }',
    // Host addresses in hashes, prefixes in interval sets: deleting an element from an interval set
    // (pipapo) rewrites its whole lookup table, ~20 ms per element with 4,000 guests, so a guest's
    // shutdown and sync's removals would pay that per address; from a hash it costs nothing.
    '  set v4 { type ifname . ipv4_addr; }',
    '  set v4net { type ifname . ipv4_addr; flags interval; }',
    ...(ip
      ? [
          '  set v6 { type ifname . ipv6_addr; }',
          // A /64 (the usual IPv6 allocation) is a hash element too, looked up with the address masked to /64.
          '  set v6p64 { type ifname . ipv6_addr; }',
          '  set v6net { type ifname . ipv6_addr; flags interval; }',
          // The same addresses as neighbour advertisement targets (see ND_TARGET).
          `  set nd6 { typeof iifname . ${ND_TARGET}; }`,
          `  set nd6p64 { typeof iifname . ${ND_TARGET}; }`,
          `  set nd6net { typeof iifname . ${ND_TARGET}; flags interval; }`,
          '  map block_to { type ifname : verdict; }',
          '  map block_from { type ifname : verdict; }',
          // The fast path: a guest's ordinary traffic is one hash lookup each way. Keyed on the
          // interface index, not its name: hashing a 16-byte name per frame cost ~7% of the rate.
          // Learned, not written: the full checks below add what they accept (LEARN). nft lists every
          // interface on the host before it parses an index (~50 ms with 4,000 guests' vifs), so a
          // hook that wrote these elements paid that on every start and shutdown. A learned element
          // is only ever something the full checks accepted for that port; a change that could make
          // one stale (a port updated or removed, a blocklist) flushes the four sets (planBridge).
          `  set fast4 { type iface_index . ether_addr . ipv4_addr; size ${LEARNED_MAX}; flags dynamic; }`,
          `  set fast6 { type iface_index . ether_addr . ipv6_addr; size ${LEARNED_MAX}; flags dynamic; }`,
          `  set dst4 { type iface_index . ipv4_addr; size ${LEARNED_MAX}; flags dynamic; }`,
          `  set dst6 { type iface_index . ipv6_addr; size ${LEARNED_MAX}; flags dynamic; }`,
          // Ports with a blocklist: the fast path would skip it, so they learn nothing.
          '  set blocked { type ifname; }',
        ]
      : []),
    ...classes.map((cls) => `  set cnt_${cls} { type ifname; size 65536; flags dynamic; counter; }`),
    ...(settings.log ? classes.map((cls) => `  set log_${cls} { type ifname; size 65536; flags dynamic,timeout; timeout 10m; }`) : []),
    ...chain('from_arp', [
      ...dropRules(settings, 'arp_mac', 'iifname @mac_ports iifname . arp saddr ether != @port_mac', from),
      // Sender IP 0.0.0.0 is an address probe (RFC 5227); anything else must be the guest's own.
      'arp saddr ip 0.0.0.0 return',
      ...own4('iifname . arp saddr ip'),
      ...dropRules(settings, 'arp_ip', '', from),
    ]),
    ...(ip
      ? [
          ...chain('from_ip4', [
            ...dropRules(settings, 'dhcps', 'udp sport 67 udp dport 68', from),
            LEARN.from4,
            ...own4('iifname . ip saddr'),
            'udp sport 68 udp dport 67 return',
            ...dropRules(settings, 'src', '', from),
          ]),
          ...chain('from_ip6', [
            ...dropRules(settings, 'ra', 'icmpv6 type nd-router-advert', from),
            ...dropRules(settings, 'redirect', 'icmpv6 type nd-redirect', from),
            ...dropRules(settings, 'dhcp6s', 'udp sport 547 udp dport 546', from),
            // IPv6's ARP reply: a neighbour advertisement names the address it claims (its target), which
            // must be the guest's own, whatever the packet's source. Otherwise a guest could point its
            // neighbours' and the router's caches for another guest's address at its own MAC.
            'icmpv6 type nd-neighbor-advert jump from_nd',
            // What a guest sends from :: before it has an address: DAD, MLD during DAD, router solicitations.
            'ip6 saddr :: ip6 daddr ff02::/16 icmpv6 type { nd-router-solicit, nd-neighbor-solicit, mld2-listener-report } return',
            LEARN.from6,
            ...own6('iifname . ip6 saddr'),
            ...dropRules(settings, 'src6', '', from),
          ]),
          ...chain('from_nd', [
            ...own6(`iifname . ${ND_TARGET}`, { hosts: 'nd6', p64: 'nd6p64', nets: 'nd6net' }, ND_MASK64),
            ...dropRules(settings, 'nd_target', '', from),
          ]),
          ...chain('to_ip4', [
            LEARN.to4,
            ...own4('oifname . ip daddr'),
            'meta pkttype broadcast return',
            'ip daddr 224.0.0.0/4 return',
            'udp sport 67 udp dport 68 return',
            ...dropRules(settings, 'dst', '', to),
          ]),
          ...chain('to_ip6', [LEARN.to6, ...own6('oifname . ip6 daddr'), 'ip6 daddr ff00::/8 return', ...dropRules(settings, 'dst6', '', to)]),
        ]
      : []),
    // One base chain for all of it: every base chain a frame passes costs, at 100,000+ frames a second.
    ...chain(`from_guest_${d}`, [
      // Fast path: the port, its MAC and one of its own host addresses, in one lookup. Everything a guest
      // must not send (DHCP and DHCPv6 server replies, router advertisements, redirects) is excluded by
      // protocol and port first and meets the full checks below, as does every port with a blocklist.
      // Switched frames (pkttype other: not for dom0) are also taken out of conntrack (NOTRACK): br_netfilter
      // turns them into PACKET_HOST before iptables' raw table could tell them from dom0's own traffic.
      ...(ip ? [...(settings.notrack ? FAST_FROM.map((rule) => `meta pkttype other ${rule} notrack accept`) : []), ...FAST_FROM.map((rule) => `${rule} accept`)] : []),
      ...(settings.notrack ? [`iifname != @guarded_${d} meta pkttype other ether daddr @macs notrack accept comment "to a guest"`] : []),
      `iifname != @guarded_${d} accept`,
      ...(settings.notrack ? ['meta pkttype other notrack comment "from a guest"'] : []),
      ...dropRules(settings, 'mac', 'iifname @mac_ports iifname . ether saddr != @port_mac', from),
      ...dropRules(settings, 'ethertype', `ether type != { ${types.join(', ')} }`, from),
      // Blocklists: a jump only for the few ports that have one.
      ...(ip ? ['iifname vmap @block_from'] : []),
      `ether type vmap { arp : jump from_arp${ip ? ', ip : jump from_ip4, ip6 : jump from_ip6' : ''} }`,
    ], 'type filter hook prerouting priority -290; policy accept;'),
    ...(ip
      ? chain(`to_guest_${d}`, ['oif . ip daddr @dst4 accept', 'oif . ip6 daddr @dst6 accept', `oifname != @guarded_${d} accept`, 'oifname vmap @block_to', 'ether type vmap { ip : jump to_ip4, ip6 : jump to_ip6 }'], 'type filter hook forward priority 0; policy accept;')
      : []),
  ];
  // The blocked ports' sets are declared outside the skeleton (writeBlock): their shape is part of the
  // layout all the same, so a change to it replaces the table (its old sets would refuse the new type).
  const digest = shortDigest([...body('@'), ...(ip ? [...Object.values(BLOCK_SET_TYPES), ...Object.values(blockNames('@', '0'))] : [])].join('\n'));
  return { digest, body: body(digest) };
}

/**
 * What a chain of the bridge table is, as far as a hand edit matters: its hook (base chains: hook,
 * priority, policy) and the verdict each rule ends in, in order. Read back from `nft -j` (doctor) and
 * compared with what vif-guard writes: a rule inserted, deleted, or turned from drop into accept shows.
 */
export interface ChainShape {
  readonly hook: string | undefined;
  readonly verdicts: readonly string[];
}

/** A base chain's hook as ChainShape names it, whether read from a body or from `nft -j`: `prerouting -290 accept`. */
export function hookText(hook: string, priority: number | string, policy: string): string {
  return `${hook} ${priority} ${policy}`;
}

/** The verdict a rule as vif-guard writes it ends in: `accept`, `drop`, `return`, `jump NAME`, `vmap`, or `-` (none: learn, log, notrack). */
export function ruleVerdict(rule: string): string {
  const bare = rule.trim().replace(/ comment "(?:[^"\\]|\\.)*"$/, '');
  if (/ vmap (?:@\S+|\{.*\})$/.test(bare)) return 'vmap';
  const jump = /(?:^| )(jump|goto) (\S+)$/.exec(bare);
  if (jump) return `${jump[1]} ${jump[2]}`;
  return /(?:^| )(accept|drop|return)$/.exec(bare)?.[1] ?? '-';
}

/** Every chain of a skeleton's body (and of blocked ports: blockChainShapes) as vif-guard writes it. */
export function chainShapes(body: readonly string[]): Map<string, ChainShape> {
  const shapes = new Map<string, ChainShape>();
  let open: { name: string; hook: string | undefined; verdicts: string[] } | undefined;
  for (const line of body) {
    const start = /^ {2}chain (\S+) \{$/.exec(line);
    if (start?.[1]) {
      open = { name: start[1], hook: undefined, verdicts: [] };
      continue;
    }
    if (!open) continue;
    if (line === '  }') {
      shapes.set(open.name, { hook: open.hook, verdicts: open.verdicts });
      open = undefined;
      continue;
    }
    const base = /^ {4}type filter hook (\S+) priority (-?\d+); policy (\w+);$/.exec(line);
    if (base?.[1] && base[2] && base[3]) open.hook = hookText(base[1], base[2], base[3]);
    else open.verdicts.push(ruleVerdict(line));
  }
  return shapes;
}

/** The named sets and maps a skeleton's body declares. */
export function declaredSets(body: readonly string[]): Set<string> {
  return new Set(body.flatMap((line) => /^ {2}(?:set|map) (\S+) \{/.exec(line)?.[1] ?? []));
}

/** A blocked port's two chains (blockRules) as chainShapes has them. */
export function blockChainShapes(ifname: string, digest: string, settings: Settings): [string, ChainShape][] {
  const names = blockNames(ifname, digest);
  const rules = blockRules(ifname, digest, settings);
  return [
    [names.to, { hook: undefined, verdicts: rules.to.map(ruleVerdict) }],
    [names.from, { hook: undefined, verdicts: rules.from.map(ruleVerdict) }],
  ];
}

/** vif-guard's bridge table for these guarded ports; undefined when there is nothing to enforce. */
export function buildBridgeSpec(
  ports: readonly GuestPort[],
  settings: Settings,
  ip: boolean,
  blocks?: (port: GuestPort) => BridgeBlock | undefined,
  /** A port's elements as they already are, when its configuration and blocklists are unchanged (hooks). */
  reuse?: (port: GuestPort, block: BridgeBlock | undefined) => BridgePort | undefined,
): BridgeSpec | undefined {
  if (!ip && !settings.layer2) return undefined;
  if (ports.length === 0) return undefined;
  const { digest, body } = bridgeSkeleton(settings, ip);
  // Layer 2 alone needs only IPv4 (ARP); keeping IPv6 out of the comment lets a hook, which reads
  // IPv4 back from iptables, write the same comment as sync.
  const bridgePorts = ports
    .map((port) => {
      if (!ip) return layer2Port(port);
      const block = blocks?.(port);
      return reuse?.(port, block) ?? bridgePort(port, block);
    })
    .sort((a, b) => (a.ifname < b.ifname ? -1 : a.ifname > b.ifname ? 1 : 0));
  return { ip, digest, body, ports: bridgePorts };
}
