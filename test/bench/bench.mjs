#!/usr/bin/env node
// vif-guard's benchmark (issue 6): every figure is measured against a baseline in the same run.
// Runs only in network namespaces it creates (removed at the end, also on failure); traffic stays
// between them; every loop is bounded. Needs root, iperf3, python3, iptables, nftables.
//
//   npm run bench [-- --quick] [--out DIR] [--only forwarding,blocklist,iptables,sync,xen,hooks,ebtables]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeClientWrappers, xenstoreClients } from '../fixtures/xenstore-clients.mjs';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const OUT = resolve(args[args.indexOf('--out') + 1] && args.includes('--out') ? args[args.indexOf('--out') + 1] : 'bench-results');
const ONLY = args.includes('--only') ? new Set((args[args.indexOf('--only') + 1] ?? '').split(',')) : undefined;
const want = (section) => ONLY === undefined || ONLY.has(section);
const GUESTS = QUICK ? 1000 : 4000;
const SECONDS = QUICK ? 2 : 5;
const RUNS = QUICK ? 5 : 11;
const started = Date.now();
const made = [];
const dir = mkdtempSync(join(tmpdir(), 'vif-guard-bench-'));

const sh = (cmd, argv, opts = {}) => execFileSync(cmd, argv, { encoding: 'utf8', ...opts });
const ns = (name, argv, opts) => sh('ip', ['netns', 'exec', name, ...argv], opts);
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const progress = (line) => process.stderr.write(`bench [${((Date.now() - started) / 1000).toFixed(0)} s]: ${line}\n`);

function cleanup() {
  for (const name of made.reverse()) spawnSync('ip', ['netns', 'del', name]);
  made.length = 0;
  rmSync(dir, { recursive: true, force: true });
}
// Interrupted (Ctrl-C, or killed by a CI step or another tool with SIGTERM): the namespaces go too.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(signal, () => {
    cleanup();
    process.exit(code);
  });
}

/** The bridge of the i-th synthetic port: a Linux bridge takes at most 1,024 ports, so a host with thousands of guests has several. */
const bridgeOf = (i) => `xenbr${Math.floor((i + 3) / 1000)}`;

/**
 * A dom0 with xenbr0 and two real guests (vifA.0, vifB.0) on veths, and an interface for each
 * synthetic port (`ports`: their names) and for the hooks' vifnew.0: taps, 1,000 to a bridge, as a
 * host with that many guests has them. Costs that grow with them are real costs: nft lists every
 * interface to parse an interface index, and glibc's getaddrinfo() (which libxtables calls for a udp
 * port option) dumps every interface's addresses. The fast path's sets are filled for them (fillLearned).
 */
function buildLab(tag, ports = []) {
  const d0 = `vgb-${process.pid}-${tag}`;
  const [a, b] = [`${d0}-a`, `${d0}-b`];
  for (const name of [d0, a, b]) {
    sh('ip', ['netns', 'add', name]);
    made.push(name);
  }
  ns(d0, ['sh', '-c', 'ip link set lo up; ip link add xenbr0 address 02:00:00:00:0b:00 type bridge; ip link set xenbr0 up; echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables; echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables']);
  const guests = [];
  for (const [i, g] of [[1, a], [2, b]]) {
    const mac = `00:16:3e:ff:00:0${i}`;
    sh('ip', ['link', 'add', `vifbench${i}.0`, 'netns', d0, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', g, 'address', mac]);
    ns(g, ['sh', '-c', `ip link set lo up; ip addr add 10.250.0.${i}/16 dev eth0; ip link set eth0 up`]);
    ns(d0, ['sh', '-c', `ip link set vifbench${i}.0 master xenbr0 up`]);
    guests.push({ ns: g, vif: `vifbench${i}.0`, ip: `10.250.0.${i}`, mac });
  }
  const bridges = [...new Set(ports.map((_, i) => bridgeOf(i)))].filter((name) => name !== 'xenbr0');
  const batch = [
    ...bridges.flatMap((name) => [`link add ${name} type bridge`, `link set ${name} up`]),
    ...[...ports, 'vifnew.0'].flatMap((name, i) => [`tuntap add ${name} mode tap`, `link set ${name} master ${name === 'vifnew.0' ? 'xenbr0' : bridgeOf(i)} up`]),
  ];
  ns(d0, ['ip', '-batch', '-'], { input: `${batch.join('\n')}\n` });
  return { d0, guests };
}
/** Guests given a country zone before the nftables hooks are timed again. */
const BLOCKED_GUESTS = 20;
const vifNames = (count) => Array.from({ length: count }, (_, i) => `vif${i + 1}.0`);

function destroyLab(lab) {
  for (const name of [lab.d0, ...lab.guests.map((g) => g.ns)]) {
    spawnSync('ip', ['netns', 'del', name]);
    made.splice(made.indexOf(name), 1);
  }
}

/** Protect `count` synthetic ports plus the two real guests, in-process (the engine sync uses). */
function protect(lab, variant, count, layer2Tool = 'auto') {
  const script = join(dir, 'protect.mjs');
  writeFileSync(script, `
const { applyFullState } = await import(${JSON.stringify(resolve('dist/lib/core/engine.js'))});
const { createRunner } = await import(${JSON.stringify(resolve('dist/lib/runner.js'))});
const { DEFAULT_SETTINGS } = await import(${JSON.stringify(resolve('dist/lib/config/settings.js'))});
const { parseAddressList } = await import(${JSON.stringify(resolve('dist/lib/guest/validate.js'))});
const [variant, count, real, layer2Tool] = [process.argv[2], Number(process.argv[3]), JSON.parse(process.argv[4]), process.argv[5]];
const hex = (n) => n.toString(16).padStart(2, '0');
const ports = Array.from({ length: count }, (_, i) => ({ ifname: 'vif' + (i + 1) + '.0', guest: 'g' + i, bridge: 'xenbr' + Math.floor((i + 3) / 1000), mac: '00:16:3e:' + hex(i >> 16 & 255) + ':' + hex(i >> 8 & 255) + ':' + hex(i & 255), addresses: parseAddressList('10.' + (100 + (i >> 16)) + '.' + ((i >> 8) & 255) + '.' + ((i & 255) || 1), { source: 'bench' }) }));
for (const g of real) ports.push({ ifname: g.vif, guest: g.vif, bridge: 'xenbr0', mac: g.mac, addresses: parseAddressList(g.ip, { source: 'bench' }) });
// The same settings the hooks use (logging on): otherwise the first hook would rewrite every chain.
const ctx = { runner: createRunner(), settings: { ...DEFAULT_SETTINGS, backend: variant, layer2Tool }, lockPath: ${JSON.stringify(join(dir, 'lock'))}, log: () => {} };
let t = performance.now();
await applyFullState(ctx, ports);
const full = performance.now() - t;
// Nothing to do: the median of five (single runs here spread over 200-320 ms); the bench takes the median over its runs.
const noops = [];
for (let i = 0; i < 5; i += 1) {
  t = performance.now();
  await applyFullState(ctx, ports);
  noops.push(performance.now() - t);
}
console.log(JSON.stringify({ full, noop: noops.sort((a, b) => a - b)[2] }));
`);
  return JSON.parse(ns(lab.d0, ['env', ...EB_ENV(layer2Tool), 'node', script, variant, String(count), JSON.stringify(lab.guests), layer2Tool]).trim().split('\n').pop());
}

/**
 * What the nftables fast path would have learned on a host where every guest talks: an element per
 * synthetic guest in fast4 and dst4 (the sets the IPv4 forwarding runs look up), so the lookups run
 * against sets of the size a real host's reach. Untimed; the two real guests' are learned by traffic.
 */
function fillLearned(lab, count) {
  const hex = (n) => n.toString(16).padStart(2, '0');
  const [from, to] = [[], []];
  for (let i = 0; i < count; i += 1) {
    const [vif, ip] = [`"vif${i + 1}.0"`, `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255 || 1}`];
    from.push(`${vif} . 00:16:3e:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)} . ${ip}`);
    to.push(`${vif} . ${ip}`);
  }
  ns(lab.d0, ['nft', '-f', '-'], { input: `add element bridge vif_guard fast4 { ${from.join(', ')} }\nadd element bridge vif_guard dst4 { ${to.join(', ')} }\n` });
}

/** Packets per second guest A -> guest B: iperf3 UDP, 64-byte payloads, received count. */
function forwardKpps(lab) {
  const [a, b] = lab.guests;
  // Sender and receiver pinned to their own core, the same for every run: the bridge and its firewall
  // run in the sender's softirq, and where the scheduler put them moved the rate by up to 20%.
  const server = spawn('ip', ['netns', 'exec', b.ns, 'taskset', '-c', '1', 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  spawnSync('sleep', ['0.5']);
  const out = ns(a.ns, ['taskset', '-c', '0', 'iperf3', '-c', b.ip, '-p', '5201', '-u', '-l', '64', '-b', '0', '-t', String(SECONDS), '--json'], { timeout: (SECONDS + 20) * 1000 });
  server.kill();
  const sum = JSON.parse(out).end.sum;
  return (sum.packets - (sum.lost_packets ?? 0)) / sum.seconds / 1000;
}

/**
 * `ebtables` and `ebtables-restore` as ebtables-nft, whatever the host's alternative: kernels this
 * bench runs on may have no legacy ebtables tables.
 */
function ebtablesNftDir() {
  const bin = join(dir, 'ebtables-nft-bin');
  if (!existsSync(bin)) {
    mkdirSync(bin, { recursive: true });
    for (const tool of ['ebtables', 'ebtables-restore']) symlinkSync('/usr/sbin/xtables-nft-multi', join(bin, tool));
  }
  return bin;
}
const EB_ENV = (layer2Tool) => (layer2Tool === 'ebtables' ? [`VIF_GUARD_BIN_DIR=${ebtablesNftDir()}`] : []);

/**
 * `vif-guard block` of a zone for the lab's second guest, timed inside the namespace from process
 * start to exit, like the hooks; `block.unblock()` removes the list again (untimed), so the next
 * block is a load from nothing rather than a replacement.
 */
function blockCommand(lab, backend, zoneFile) {
  const blockEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', VIF_GUARD_CONFIG: join(dir, `block-${backend}.conf`), VIF_GUARD_LOCK: join(dir, 'lock'), VIF_GUARD_STATE_DIR: join(dir, `state-${backend}`) };
  writeFileSync(blockEnv.VIF_GUARD_CONFIG, `[general]\nbackend = ${backend}\n`);
  const blockTimer = join(dir, `block-timer-${backend}.mjs`);
  writeFileSync(blockTimer, `
import { spawnSync } from 'node:child_process';
const t = performance.now();
const out = spawnSync(process.execPath, [${JSON.stringify(resolve('dist/bundle/vif-guard.cjs'))}, ...process.argv.slice(2), '--json'], { env: ${JSON.stringify(blockEnv)}, encoding: 'utf8' });
if (out.status !== 0) throw new Error('vif-guard ' + process.argv[2] + ' failed: ' + out.stderr);
console.log(JSON.stringify({ total: performance.now() - t, apply: JSON.parse(out.stdout).applyMs }));
`);
  const vif = lab.guests[1].vif;
  const block = (target = vif) => JSON.parse(ns(lab.d0, [process.execPath, blockTimer, 'block', target, '--zone', zoneFile]).trim());
  block.unblock = () => ns(lab.d0, [process.execPath, blockTimer, 'unblock', vif]);
  return block;
}

/** One `online` hook, process start to exit, with the ports already protected. */
function hookMs(lab, variant, layer2Tool = 'auto', stateDir = join(dir, 'state')) {
  const config = join(dir, `hook-${variant}.conf`);
  writeFileSync(config, `[general]\nbackend = ${variant}\nlayer2_tool = ${layer2Tool}\n`);
  // Timed inside the namespace: the hook process alone, as libxl starts it (not ip netns exec's own cost).
  const timer = join(dir, 'hook-timer.mjs');
  writeFileSync(timer, `
import { spawnSync } from 'node:child_process';
const [runs, up, down] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ${layer2Tool === 'ebtables' ? `VIF_GUARD_BIN_DIR: ${JSON.stringify(ebtablesNftDir())}, ` : ''}VIF_GUARD_CONFIG: ${JSON.stringify(config)}, VIF_GUARD_LOCK: ${JSON.stringify(join(dir, 'lock'))}, VIF_GUARD_STATE_DIR: ${JSON.stringify(stateDir)} };
const [ups, downs] = [[], []];
for (let i = 0; i < runs; i += 1) {
  let t = performance.now();
  // Two addresses, one of them a prefix: a guest's shutdown deletes from the hash and the interval sets.
  const r = spawnSync(process.execPath, [up, '--command', 'online', '--dev', 'vifnew.0', '--ip', '10.251.0.1 10.251.1.0/29', '--mac', '00:16:3e:fe:00:01', '--bridge', 'xenbr0'], { env, encoding: 'utf8' });
  ups.push(performance.now() - t);
  if (r.status !== 0) throw new Error('vif-up failed: ' + r.stdout + r.stderr);
  t = performance.now();
  const d = spawnSync(process.execPath, [down, '--command', 'offline', '--dev', 'vifnew.0'], { env, encoding: 'utf8' });
  downs.push(performance.now() - t);
  if (d.status !== 0) throw new Error('vif-down failed: ' + d.stdout + d.stderr);
}
console.log(JSON.stringify([ups, downs]));
`);
  const [ups, downs] = JSON.parse(ns(lab.d0, [process.execPath, timer, String(RUNS), resolve('dist/bundle/vif-up.cjs'), resolve('dist/bundle/vif-down.cjs')]).trim());
  return { up: median(ups), down: median(downs) };
}

/** conntrack entries created by N distinct UDP flows from guest A (switched to B). */
function conntrackGrowth(lab, flows) {
  ns(lab.d0, ['iptables', '-A', 'OUTPUT', '-o', 'lo', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP']);
  ns(lab.d0, ['sh', '-c', 'conntrack -F 2>/dev/null; true']);
  const count = () => Number(ns(lab.d0, ['cat', '/proc/sys/net/netfilter/nf_conntrack_count']).trim());
  const before = count();
  const [a, b] = lab.guests;
  const flood = join(dir, 'flood.py');
  writeFileSync(flood, `import socket, struct, sys
n = int(sys.argv[1]); src = socket.inet_aton(sys.argv[2]); dst = socket.inet_aton(sys.argv[3])
dmac = bytes.fromhex(sys.argv[4].replace(':', '')); s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0)); smac = s.getsockname()[4]
def csum(h):
    t = sum(struct.unpack('!10H', h)); t = (t & 0xffff) + (t >> 16); return ~t & 0xffff
for i in range(n):
    udp = struct.pack('!HHHH', 1024 + i % 60000, 9 + i // 60000, 8, 0)
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 28, i & 0xffff, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    s.send(dmac + smac + b'\\x08\\x00' + ip + udp)
`);
  ns(a.ns, ['python3', flood, String(flows), a.ip, b.ip, b.mac], { timeout: 120_000 });
  return { before, after: count() };
}

const rows = [];
const row = (figure, value, baseline, unit, target, pass) => {
  rows.push({ figure, value: Number(value.toFixed(1)), baseline: baseline === undefined ? null : Number(baseline.toFixed(1)), unit, ratio: baseline ? Number((value / baseline).toFixed(2)) : null, target, pass });
  progress(`${figure}: ${value.toFixed(1)} ${unit}${baseline === undefined ? '' : ` (baseline ${baseline.toFixed(1)})`} -> ${pass ? 'PASS' : 'FAIL'}`);
};

const BRNF = (on) => `echo ${on} > /proc/sys/net/bridge/bridge-nf-call-iptables; echo ${on} > /proc/sys/net/bridge/bridge-nf-call-ip6tables`;
const BACKENDS = { nftables: 'nftables', nft: 'iptables-nft', legacy: 'iptables-legacy' };

/**
 * An 8,600-prefix zone shaped like a real country's, one prefix per line. Country zones list address
 * ranges (RIR allocations) cut into CIDR prefixes, with gaps between the ranges: a zone's adjacent
 * prefixes merge back into about 0.7 intervals per prefix (tor-geoipdb's IPFire data: CN 6,612
 * prefixes in 4,807 ranges, BR 7,708 in 4,569, JP 10,412 in 7,761). Here: ranges of the sizes China's
 * data has (its count per size class, as weights), at least one /24 apart, each cut into prefixes,
 * from a fixed seed. (This bench's earlier zone was runs of adjacent /24s, which merged into one
 * interval per 3.5 prefixes and made vif-guard's load look ~40 ms faster than a real zone's.)
 */
function writeZone(count) {
  let seed = 20261122;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  // [prefix length of the range's size class, ranges of that class in CN's data]
  const classes = [[24, 1163], [23, 710], [22, 1232], [21, 464], [20, 278], [19, 217], [18, 114], [17, 92], [16, 162], [15, 104], [14, 92], [13, 77], [12, 55], [11, 33], [10, 13]];
  const total = classes.reduce((sum, [, n]) => sum + n, 0);
  const sizeClass = () => {
    let pick = random() * total;
    for (const [length, n] of classes) if ((pick -= n) < 0) return length;
    return 24;
  };
  const ipv4 = (n) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
  const lines = [];
  let ranges = 0;
  let at = 2 * 2 ** 24;
  while (lines.length < count) {
    const base = 2 ** (32 - sizeClass());
    // Most ranges are one aligned allocation; the rest are an allocation and part of the next.
    const size = random() < 0.8 ? base : base + Math.floor((random() * base) / 256) * 256;
    at = Math.ceil((at + (1 + Math.floor(random() * 64)) * 256) / base) * base;
    ranges += 1;
    // The range [at, at + size) as the fewest prefixes: the largest aligned block that fits, repeatedly.
    for (let from = at, end = at + size; from < end && lines.length < count; ) {
      let block = 256;
      while (from % (block * 2) === 0 && from + block * 2 <= end) block *= 2;
      lines.push(`${ipv4(from)}/${32 - Math.log2(block)}`);
      from += block;
    }
    at += size;
  }
  const file = join(dir, 'bench.zone');
  writeFileSync(file, `# bench zone: ${count} prefixes in ${ranges} ranges, shaped like a country's\n${lines.join('\n')}\n`);
  return { file, count, ranges };
}

try {
  if (want('forwarding') || want('blocklist')) {
    const lab = buildLab('fwd', vifNames(GUESTS));
    const PAIRS = QUICK ? 3 : 7;
    progress(`forwarding rate: ${PAIRS} pairs of runs of ${SECONDS}s, the same bridge with no firewall and with ${GUESTS} guests protected`);
    ns(lab.d0, ['sh', '-c', BRNF(0)]);
    // Two cores shared by sender, receiver and bridge drift by +-10% between runs, and more over minutes:
    // bare and protected runs alternate (the table deleted, then put back by sync), the order flips
    // every pair (bare first, then protected first) so a drift over the run favours neither side, and
    // the figure is the median of the pairs' ratios.
    if (!want('forwarding')) protect(lab, 'nftables', GUESTS);
    else {
      const pairs = [];
      // Every protected run starts from no table: each is a sync from nothing, then five with nothing to do.
      const syncs = [];
      // A second's pause before each run: what a commit or a table deletion leaves to the kernel (RCU
      // frees, reclaim) is not counted against either side.
      const bareRun = () => {
        spawnSync('sleep', ['1']);
        return forwardKpps(lab);
      };
      const protectedRun = () => {
        // The default backend where nf_tables exists: every check in the bridge family, no br_netfilter.
        syncs.push(protect(lab, 'nftables', GUESTS));
        fillLearned(lab, GUESTS);
        spawnSync('sleep', ['1']);
        const rate = forwardKpps(lab);
        ns(lab.d0, ['nft', 'delete', 'table', 'bridge', 'vif_guard']);
        return rate;
      };
      for (let i = 0; i < PAIRS; i += 1) {
        if (i % 2 === 0) {
          const bare = bareRun();
          pairs.push({ bare, protected: protectedRun() });
        } else {
          const prot = protectedRun();
          pairs.push({ bare: bareRun(), protected: prot });
        }
      }
      protect(lab, 'nftables', GUESTS);
      const ratio = median(pairs.map((pair) => pair.protected / pair.bare));
      const [bare, nftRate] = [median(pairs.map((pair) => pair.bare)), median(pairs.map((pair) => pair.protected))];
      progress(`pairs (no firewall / protected, kpps): ${pairs.map((pair) => `${pair.bare.toFixed(0)}/${pair.protected.toFixed(0)}`).join(', ')}`);
      row(`forwarding, ${GUESTS} guests protected (nftables, the default)`, nftRate, bare, 'kpps', '>= 0.9 x no firewall', ratio >= 0.9);
      // Three decimals: this figure sits near its 0.9 target, and 0.8996 must not print as 0.9 next to FAIL.
      rows[rows.length - 1].ratio = Number(ratio.toFixed(3));
      const sync = { full: median(syncs.map((timing) => timing.full)), noop: median(syncs.map((timing) => timing.noop)) };
      row(`sync of ${GUESTS} guests from nothing (nftables, the engine in-process)`, sync.full, undefined, 'ms', '< 2000 ms', sync.full < 2000);
      row(`sync of ${GUESTS} guests, nothing to do (nftables, the engine in-process)`, sync.noop, undefined, 'ms', '< 300 ms', sync.noop < 300);
      // Worst case for conntrack: br_netfilter on (some other firewall wants bridged frames in iptables).
      ns(lab.d0, ['sh', '-c', BRNF(1)]);
      const flows = QUICK ? 20_000 : 100_000;
      const ct = conntrackGrowth(lab, flows);
      row(`conntrack entries from ${flows} guest flows (br_netfilter on)`, ct.after - ct.before, flows, 'entries', '< 1% of flows', ct.after - ct.before < flows / 100);
    }
    if (want('blocklist')) {
      progress(`blocklist: vif-guard block with an 8,600-prefix zone vs one iptables -A per prefix`);
      const zone = writeZone(8600);
      const block = blockCommand(lab, 'nftables', zone.file);
      // Loads from nothing (the list removed after each), then replacements of a loaded list: medians.
      const loads = Array.from({ length: QUICK ? 3 : 5 }, () => {
        const load = block();
        block.unblock();
        return load;
      });
      const first = loads.toSorted((a, b) => a.total - b.total)[loads.length >> 1];
      const firstLoad = first.total;
      block();
      const swapRuns = Array.from({ length: QUICK ? 3 : 5 }, block);
      const swaps = swapRuns.map((run) => run.total);
      // The usual script: one iptables -A per prefix, bounded in time. If the cap cuts it short, extrapolate
      // linearly: a lower bound, as each call gets slower as the chain grows.
      const perPrefixScript = (tool, cap) => {
        ns(lab.d0, [tool, '-N', 'VGBENCH']);
        const t = performance.now();
        spawnSync('ip', ['netns', 'exec', lab.d0, 'timeout', String(cap), 'sh', '-c', `grep -v '^#' ${zone.file} | while read p; do ${tool} -A VGBENCH -s "$p" -j DROP; done`]);
        const ms = performance.now() - t;
        const added = ns(lab.d0, [tool, '-S', 'VGBENCH']).split('\n').filter((line) => line.startsWith('-A')).length;
        const full = added >= zone.count ? ms : (ms / Math.max(added, 1)) * zone.count;
        return { full, how: added >= zone.count ? '' : `, ${added} of ${zone.count} in ${cap} s, extrapolated linearly (a lower bound: each call gets slower)` };
      };
      // iptables-nft (the default iptables), then iptables-legacy, where every call replaces the whole table.
      // --quick keeps most of the iptables-nft script (its calls slow down as the chain grows, so a short
      // cap understates it) and leaves out iptables-legacy's, to stay under two minutes.
      const nftScript = perPrefixScript('iptables-nft', QUICK ? 18 : 120);
      row(`blocklist: load a ${zone.count}-prefix zone (vif-guard block, process start to exit, median of ${loads.length})`, firstLoad, nftScript.full, 'ms', '< 300 ms and >= 100 x faster', firstLoad < 300 && nftScript.full / firstLoad >= 100);
      rows[rows.length - 1].note = `${(nftScript.full / firstLoad).toFixed(0)} x faster end to end, ${(nftScript.full / first.apply).toFixed(0)} x for the apply alone (${first.apply} ms under the lock); baseline: one iptables-nft -A per prefix${nftScript.how}${rows[rows.length - 1].pass ? '' : ' (FAIL)'}`;
      if (!QUICK) {
        const legacyScript = perPrefixScript('iptables-legacy', 60);
        row(`blocklist: the same load against one iptables-legacy -A per prefix`, firstLoad, legacyScript.full, 'ms', '>= 100 x faster', legacyScript.full / firstLoad >= 100);
        rows[rows.length - 1].note = `${(legacyScript.full / firstLoad).toFixed(0)} x faster${legacyScript.how}${rows[rows.length - 1].pass ? '' : ' (FAIL)'}`;
      }
      const swap = median(swaps);
      row(`blocklist: replace it atomically (same command again)`, swap, undefined, 'ms', '< 300 ms', swap < 300);
    }
    destroyLab(lab);
  }

  if (want('iptables')) {
    progress(`forwarding on the iptables backend (hosts without nf_tables), ${GUESTS} guests`);
    const ipt = buildLab('ipt', vifNames(GUESTS));
    ns(ipt.d0, ['sh', '-c', BRNF(0)]);
    const bareIpt = median([forwardKpps(ipt), forwardKpps(ipt), forwardKpps(ipt)]);
    ns(ipt.d0, ['sh', '-c', BRNF(1)]);
    protect(ipt, 'nft', GUESTS);
    const iptRate = median([forwardKpps(ipt), forwardKpps(ipt), forwardKpps(ipt)]);
    row(`forwarding, ${GUESTS} guests protected (iptables-nft backend)`, iptRate, bareIpt, 'kpps', 'reported (br_netfilter alone costs ~40%)', true);
    rows[rows.length - 1].note = 'reported';
    // Blocklists on this backend are ipsets; the command reads and rewrites the blocked port's chains alone.
    const iptBlock = blockCommand(ipt, 'nft', writeZone(8600).file)();
    row(`blocklist: load a 8600-prefix zone, ${GUESTS} guests (iptables-nft backend, ipset)`, iptBlock.total, undefined, 'ms', 'reported', true);
    rows[rows.length - 1].note = `reported (${iptBlock.apply} ms under the lock)`;
    // With that list saved, another guest's hook (it used to read both tables whenever any list was saved).
    const listedHook = hookMs(ipt, 'nft', 'auto', join(dir, 'state-nft'));
    row(`online hook, ${GUESTS} guests, a blocklist saved for another guest (iptables-nft)`, listedHook.up, undefined, 'ms', 'reported', true);
    rows[rows.length - 1].note = 'reported';
    destroyLab(ipt);
  }

  // sync as an admin runs it: the command, process start to exit, on an OpenVZ node (the hypervisor
  // whose inventory is files this bench can lay out faithfully: vzlist, CTID.conf, containers.conf).
  if (want('sync')) {
    progress(`vif-guard sync, the command, ${GUESTS} OpenVZ containers`);
    const lab = buildLab('vz', Array.from({ length: GUESTS }, (_, i) => `veth${1000 + i}.0`));
    const vz = join(dir, 'vz');
    for (const sub of ['conf', 'running', 'bin']) mkdirSync(join(vz, sub), { recursive: true });
    const hex = (n) => n.toString(16).padStart(2, '0');
    const sections = [];
    for (let i = 0; i < GUESTS; i += 1) {
      const ct = 1000 + i;
      writeFileSync(join(vz, 'conf', `${ct}.conf`), `ONBOOT="yes"\nNETIF="ifname=eth0,bridge=${bridgeOf(i)},mac=00:18:51:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)},host_ifname=veth${ct}.0,host_mac=FE:FF:FF:FF:FF:FF"\n`);
      writeFileSync(join(vz, 'running', String(ct)), '');
      sections.push(`[${ct}]\neth0 = 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}\n`);
    }
    writeFileSync(join(vz, 'containers.conf'), sections.join(''));
    symlinkSync(resolve('test/fixtures/openvz-bin/vzlist'), join(vz, 'bin', 'vzlist'));
    const config = join(vz, 'vif-guard.conf');
    writeFileSync(config, `[general]\nbackend = nftables\nvz_conf_dir = ${join(vz, 'conf')}\ncontainers_conf = ${join(vz, 'containers.conf')}\nvz_conf = ${join(vz, 'vz.conf')}\n`);
    const env = { PATH: `${join(vz, 'bin')}:/usr/sbin:/usr/bin:/sbin:/bin`, VZ_STATE: vz, VIF_GUARD_CONFIG: config, VIF_GUARD_LOCK: join(vz, 'lock'), VIF_GUARD_STATE_DIR: join(vz, 'state') };
    const timer = join(vz, 'sync-timer.mjs');
    writeFileSync(timer, `
import { spawnSync } from 'node:child_process';
const times = [];
// From nothing; then the first sync with nothing to do, which checks everything and keeps the memo;
// then five that find the memo's inputs and sets unchanged.
for (let i = 0; i < 7; i += 1) {
  const t = performance.now();
  const r = spawnSync(process.execPath, [${JSON.stringify(resolve('dist/bundle/vif-guard.cjs'))}, 'sync'], { env: ${JSON.stringify(env)}, encoding: 'utf8' });
  times.push(performance.now() - t);
  if (r.status !== 0) throw new Error('vif-guard sync failed: ' + r.stderr);
  if (i > 0 && !r.stderr.includes('nothing to do')) throw new Error('a second sync changed something: ' + r.stderr.slice(-400));
  if ((i > 1) !== r.stderr.includes('unchanged since the last sync')) throw new Error('sync ' + (i + 1) + ' did not ' + (i > 1 ? '' : 'not ') + 'answer from its memo: ' + r.stderr.slice(-400));
}
// What an admin runs after doctor finds the bridge table edited by hand, and doctor itself (it reads
// every rule of the table, which sync does not): three of each, the table as vif-guard wrote it.
const rebuild = [];
const doctor = [];
for (let i = 0; i < 3; i += 1) {
  let t = performance.now();
  const r = spawnSync(process.execPath, [${JSON.stringify(resolve('dist/bundle/vif-guard.cjs'))}, 'sync', '--rebuild'], { env: ${JSON.stringify(env)}, encoding: 'utf8' });
  rebuild.push(performance.now() - t);
  if (r.status !== 0 || !r.stderr.includes('rebuild the bridge table')) throw new Error('sync --rebuild failed: ' + r.stderr.slice(-400));
  t = performance.now();
  const d = spawnSync(process.execPath, [${JSON.stringify(resolve('dist/bundle/vif-guard.cjs'))}, 'doctor', '--json'], { env: ${JSON.stringify(env)}, encoding: 'utf8' });
  doctor.push(performance.now() - t);
  const chains = d.status !== null && d.status <= 2 ? JSON.parse(d.stdout).checks.find((check) => check.id === 'bridge-chains') : undefined;
  if (chains?.level !== 'ok') throw new Error('doctor did not find the rebuilt table as vif-guard writes it: ' + (d.stdout || d.stderr).slice(-400));
}
console.log(JSON.stringify({ times, rebuild, doctor }));
`);
    const timed = JSON.parse(ns(lab.d0, [process.execPath, timer]).trim());
    const [first, checked, ...kept] = timed.times;
    const noop = median(kept);
    row(`vif-guard sync, the command, ${GUESTS} OpenVZ containers, from nothing (process start to exit)`, first, undefined, 'ms', '< 2000 ms', first < 2000);
    row(`vif-guard sync, the command, ${GUESTS} OpenVZ containers, nothing to do (process start to exit)`, noop, undefined, 'ms', '< 300 ms', noop < 300);
    rows[rows.length - 1].note = `${noop < 300 ? 'pass' : 'FAIL'}: configs and sets unchanged since the last sync checked them (its memo); the first sync with nothing to do after a change parses and compares everything: ${Math.round(checked)} ms`;
    row(`vif-guard sync --rebuild, ${GUESTS} OpenVZ containers (the bridge table replaced whole, process start to exit)`, median(timed.rebuild), undefined, 'ms', 'reported', true);
    rows[rows.length - 1].note = 'reported';
    row(`vif-guard doctor, ${GUESTS} OpenVZ containers (every check, the bridge table's rules included)`, median(timed.doctor), undefined, 'ms', 'reported', true);
    rows[rows.length - 1].note = 'reported';
    // A container's veth hook (vznetcfg), with all of them protected: containers.conf of every
    // container against one of ten, alternated, the kernel state the same.
    writeFileSync(join(vz, 'containers10.conf'), sections.slice(0, 10).join(''));
    writeFileSync(join(vz, 'vif-guard10.conf'), readFileSync(config, 'utf8').replace('containers.conf', 'containers10.conf'));
    const hookTimer = join(vz, 'veth-timer.mjs');
    writeFileSync(hookTimer, `
import { spawnSync } from 'node:child_process';
const times = { big: [], small: [] };
for (let i = 0; i < ${RUNS}; i += 1) {
  for (const [key, config] of [['big', ${JSON.stringify(config)}], ['small', ${JSON.stringify(join(vz, 'vif-guard10.conf'))}]]) {
    const t = performance.now();
    const r = spawnSync(process.execPath, [${JSON.stringify(resolve('dist/bundle/vz-net.cjs'))}, 'init', 'veth', 'veth1005.0'], { env: { ...${JSON.stringify(env)}, VIF_GUARD_CONFIG: config, VEID: '1005' }, encoding: 'utf8' });
    times[key].push(performance.now() - t);
    if (r.status !== 0) throw new Error('the veth hook failed: ' + r.stderr);
  }
}
console.log(JSON.stringify(times));
`);
    const veth = JSON.parse(ns(lab.d0, [process.execPath, hookTimer]).trim());
    const [vethBig, vethSmall] = [median(veth.big), median(veth.small)];
    row(`OpenVZ veth hook, ${GUESTS} containers protected and in containers.conf (against 10 in it)`, vethBig, vethSmall, 'ms', '<= 1.3 x 10 containers, < 100 ms', vethBig <= 1.3 * vethSmall && vethBig < 100);
    destroyLab(lab);
  }

  // sync on a Xen dom0: the inventory is xenstore, read by Debian's real clients (xenstore-list and
  // xenstore-read, as vif-guard runs them) from a stand-in daemon that speaks xenstored's protocol and
  // keeps the store in memory (Xen's own daemons need a hypervisor). The stand-in is a node process,
  // not xenstored's C: its time per request is part of what is measured, reported beside the figure.
  if (want('xen')) {
    let clients = true;
    try {
      xenstoreClients();
    } catch (error) {
      clients = false;
      progress(`Xen sync skipped: ${error.message.split('\n')[0]}`);
    }
    if (clients) {
      progress(`vif-guard sync, the command, ${GUESTS} Xen domains (real xenstore clients, a stand-in daemon)`);
      const lab = buildLab('xen', vifNames(GUESTS));
      const xen = join(dir, 'xen');
      const node = (path, value) => {
        mkdirSync(join(xen, 'xs', path), { recursive: true });
        writeFileSync(join(xen, 'xs', path, '.value'), value);
      };
      const hex = (n) => n.toString(16).padStart(2, '0');
      for (let i = 0; i < GUESTS; i += 1) {
        const domid = i + 1;
        node(`local/domain/${domid}/name`, `g${i}`);
        // What libxl and netback write for a running PV guest's vif (xen-hotplug.md 5.1), 22 nodes.
        const nodes = {
          frontend: `/local/domain/${domid}/device/vif/0`, 'frontend-id': String(domid), online: '1', state: '4', script: '/etc/xen/scripts/vif-bridge',
          mac: `00:16:3e:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)}`, ip: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255 || 1}`, bridge: bridgeOf(i),
          handle: '0', type: 'vif', 'hotplug-status': 'connected', 'feature-sg': '1', 'feature-gso-tcpv4': '1', 'feature-gso-tcpv6': '1', 'feature-ipv6-csum-offload': '1',
          'feature-rx-copy': '1', 'feature-rx-flip': '0', 'feature-multicast-control': '1', 'feature-dynamic-multicast-control': '1', 'feature-split-event-channels': '1',
          'multi-queue-max-queues': '2', 'feature-ctrl-ring': '1',
        };
        for (const [key, value] of Object.entries(nodes)) node(`local/domain/0/backend/vif/${domid}/0/${key}`, value);
      }
      const socket = join(xen, 'xenstored.socket');
      const daemon = spawn(process.execPath, [resolve('test/fixtures/xenstored-standin.mjs'), socket, join(xen, 'xs'), '--memory'], { stdio: 'ignore' });
      try {
        for (let waited = 0; !existsSync(socket) && waited < 300; waited += 1) spawnSync('sleep', ['0.1']);
        if (!existsSync(socket)) throw new Error('the xenstored stand-in did not start');
        const bin = join(xen, 'bin');
        writeClientWrappers(bin, socket);
        mkdirSync(join(xen, 'domu'), { recursive: true });
        const config = join(xen, 'vif-guard.conf');
        writeFileSync(config, `[general]\nbackend = nftables\n[xen]\nxen_config_dir = ${join(xen, 'domu')}\n`);
        // The socket where a dom0's xenstored has it; the clients (wrappers) know it too.
        const env = { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, XENSTORED_PATH: socket, VIF_GUARD_CONFIG: config, VIF_GUARD_LOCK: join(xen, 'lock'), VIF_GUARD_STATE_DIR: join(xen, 'state') };
        const timer = join(xen, 'sync-timer.mjs');
        writeFileSync(timer, `
import { spawnSync } from 'node:child_process';
const { listRunningVifs } = await import(${JSON.stringify(resolve('dist/lib/xen/inventory.js'))});
const { createRunner } = await import(${JSON.stringify(resolve('dist/lib/runner.js'))});
const times = [];
// From nothing; the first sync with nothing to do (checks everything, keeps the memo); five more.
for (let i = 0; i < 7; i += 1) {
  const t = performance.now();
  const r = spawnSync(process.execPath, [${JSON.stringify(resolve('dist/bundle/vif-guard.cjs'))}, 'sync', ...(i === 0 ? ['--json'] : [])], { env: ${JSON.stringify(env)}, encoding: 'utf8' });
  times.push(performance.now() - t);
  if (r.status !== 0) throw new Error('vif-guard sync failed: ' + r.stderr.slice(-400));
  if (i === 0 && JSON.parse(r.stdout).protectedPorts !== ${GUESTS}) throw new Error('sync did not protect every domain: ' + r.stdout.slice(0, 400));
  if (i > 0 && !r.stderr.includes('nothing to do')) throw new Error('a second sync changed something: ' + r.stderr.slice(-400));
}
// The xenstore part alone, every running vif's nodes as sync reads them: over the socket, and through
// the clients (what sync does on a dom0 without the socket, and did before), alternated.
process.env.PATH = ${JSON.stringify(env.PATH)};
const runner = createRunner();
const reads = { socket: [], clients: [] };
let vifs = 0;
for (let i = 0; i < 5; i += 1) {
  for (const how of ['socket', 'clients']) {
    process.env.XENSTORED_PATH = how === 'socket' ? ${JSON.stringify(socket)} : '/nonexistent';
    const t = performance.now();
    vifs = (await listRunningVifs(runner)).length;
    reads[how].push(performance.now() - t);
  }
}
console.log(JSON.stringify({ times, reads, vifs }));
`);
        const timed = JSON.parse(ns(lab.d0, [process.execPath, timer]).trim());
        if (timed.vifs !== GUESTS) throw new Error(`xenstore listed ${timed.vifs} vifs, not ${GUESTS}`);
        const [first, checked, ...kept] = timed.times;
        const noop = median(kept);
        row(`vif-guard sync, the command, ${GUESTS} Xen domains, from nothing (process start to exit; xenstore: a stand-in daemon)`, first, undefined, 'ms', '< 2000 ms', first < 2000);
        row(`vif-guard sync, the command, ${GUESTS} Xen domains, nothing to do (process start to exit)`, noop, undefined, 'ms', '< 300 ms', noop < 300);
        rows[rows.length - 1].note = `${noop < 300 ? 'pass' : 'FAIL'}: configs and xenstore unchanged since the last sync checked them (its memo); the first sync with nothing to do: ${Math.round(checked)} ms`;
        row(`reading ${GUESTS} Xen domains' vifs from xenstore (sync's reads, in-process: over xenstored's socket, against Debian's xenstore clients)`, median(timed.reads.socket), median(timed.reads.clients), 'ms', 'reported (the stand-in daemon\'s time included)', true);
        rows[rows.length - 1].note = 'reported';
      } finally {
        daemon.kill();
        destroyLab(lab);
      }
    }
  }

  const offline = [];
  const fromNothing = [];
  for (const backend of want('hooks') ? ['nftables', 'nft', 'legacy'] : []) {
    const small = buildLab(`h10-${backend}`, vifNames(10));
    protect(small, backend, 10);
    const ms10 = hookMs(small, backend);
    destroyLab(small);
    const big = buildLab(`hbig-${backend}`, vifNames(GUESTS));
    const synced = protect(big, backend, GUESTS);
    const msBig = hookMs(big, backend);
    let withLists;
    if (backend === 'nftables') {
      // Other guests' country zones in the table: a hook must not pay for them (nft 1.0.6 reads every
      // single-field interval set's elements before any element change; the lists' sets are not that).
      const zone = writeZone(8600);
      const block = blockCommand(big, 'nftables', zone.file);
      for (let i = 1; i <= BLOCKED_GUESTS; i += 1) block(`vif${i}.0`);
      withLists = { ms: hookMs(big, backend), zone };
    }
    destroyLab(big);
    row(`online hook, ${GUESTS} guests (${BACKENDS[backend]})`, msBig.up, ms10.up, 'ms', '<= 1.3 x 10 guests, < 100 ms', msBig.up <= 1.3 * ms10.up && msBig.up < 100);
    if (withLists) {
      row(`online hook, ${GUESTS} guests, ${BLOCKED_GUESTS} of them with a ${withLists.zone.count}-prefix zone (nftables)`, withLists.ms.up, msBig.up, 'ms', 'reported (against no lists)', true);
      rows[rows.length - 1].note = `reported (offline ${Math.round(withLists.ms.down)} ms against ${Math.round(msBig.down)})`;
    }
    offline.push([`offline hook, ${GUESTS} guests (${BACKENDS[backend]})`, msBig.down, ms10.down]);
    if (backend !== 'nftables') fromNothing.push([`sync of ${GUESTS} guests from nothing, their interfaces up (${BACKENDS[backend]}, the engine in-process)`, synced]);
  }
  // The iptables backends' syncs, from the labs above (the nftables backend's have rows of their own).
  for (const [figure, synced] of fromNothing) {
    row(figure, synced.full, undefined, 'ms', 'reported', true);
    rows[rows.length - 1].note = `reported (nothing to do: ${Math.round(synced.noop)} ms)`;
  }

  // The same hooks' offline, the other half of a guest's restart (no target of its own).
  for (const [figure, big, small] of offline) {
    row(figure, big, small, 'ms', 'reported (against 10 guests)', true);
    rows[rows.length - 1].note = 'reported';
  }

  // The old-kernel fallback: the iptables backend with layer 2 in ebtables (no cache: a hook reads the tables).
  if (want('ebtables')) {
    const ms = {};
    for (const [key, count] of [['small', 10], ['big', GUESTS]]) {
      const lab = buildLab(`eb${key}`, vifNames(count));
      protect(lab, 'nft', count, 'ebtables');
      ms[key] = hookMs(lab, 'nft', 'ebtables');
      destroyLab(lab);
    }
    row(`online hook, ${GUESTS} guests (iptables-nft, layer 2 in ebtables-nft)`, ms.big.up, ms.small.up, 'ms', 'reported (kernels without the bridge table)', true);
    rows[rows.length - 1].note = 'reported';
  }
} finally {
  cleanup();
}

mkdirSync(OUT, { recursive: true });
const machine = `${sh('uname', ['-r']).trim()}, ${sh('nproc', []).trim()} cores, node ${process.version}`;
const markdown = [
  `vif-guard benchmark (${QUICK ? 'quick' : 'full'}), ${new Date().toISOString().slice(0, 10)}, ${machine}, ${((Date.now() - started) / 1000).toFixed(0)} s`,
  '',
  '| figure | vif-guard | baseline | ratio | target | result |',
  '|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.figure} | ${r.value ?? 'n/a'} ${r.value === null ? '' : r.unit} | ${r.baseline ?? '-'} | ${r.ratio ?? '-'} | ${r.target} | ${r.note ?? (r.pass ? 'pass' : 'FAIL')} |`),
].join('\n');
writeFileSync(join(OUT, 'bench.json'), `${JSON.stringify({ machine, quick: QUICK, rows }, null, 2)}\n`);
writeFileSync(join(OUT, 'bench.md'), `${markdown}\n`);
console.log(markdown);
