#!/usr/bin/env node
// Hook cost: median wall time of one `vif-up` (process start to exit, bundled hook) that adds a vif
// while N guests are already protected, on both iptables variants. Runs in its own network
// namespace, removed at the end; never touches the host's firewall.
//
//   node test/bench/hook-cost.mjs [--guests 1,1000] [--runs 15] [--json FILE]
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};

if (args[0] === '--inside') {
  await inside(args[1], Number(args[2]), Number(args[3]), args[4]);
} else {
  await outside();
}

async function outside() {
  const guestCounts = opt('guests', '1,1000').split(',').map(Number);
  const runs = Number(opt('runs', '15'));
  const results = [];
  for (const variant of ['nft', 'legacy']) {
    for (const guests of guestCounts) {
      const ns = `vgb-${process.pid}-${variant}-${guests}`;
      const dir = mkdtempSync(join(tmpdir(), 'vif-guard-bench-'));
      try {
        execFileSync('ip', ['netns', 'add', ns]);
        execFileSync('ip', ['netns', 'exec', ns, 'sh', '-c', 'ip link add xenbr0 type bridge && echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables']);
        const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, resolve('test/bench/hook-cost.mjs'), '--inside', variant, String(guests), String(runs), dir], { encoding: 'utf8' });
        const result = JSON.parse(out.trim().split('\n').pop());
        results.push(result);
        process.stderr.write(`iptables-${variant}, ${guests} guests: median ${result.medianMs.toFixed(1)} ms (min ${result.minMs.toFixed(1)}, max ${result.maxMs.toFixed(1)}, setup ${result.setupMs.toFixed(0)} ms)\n`);
      } finally {
        spawnSync('ip', ['netns', 'del', ns]);
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const table = ['| backend | guests already protected | median online (ms) | min | max |', '|---|---|---|---|---|',
    ...results.map((r) => `| iptables-${r.variant} | ${r.guests} | ${r.medianMs.toFixed(1)} | ${r.minMs.toFixed(1)} | ${r.maxMs.toFixed(1)} |`)];
  console.log(table.join('\n'));
  const json = opt('json', undefined);
  if (json) writeFileSync(json, JSON.stringify(results, null, 2));
}

async function inside(variant, guests, runs, dir) {
  const { applyFullState } = await import(resolve('dist/lib/core/engine.js'));
  const { createRunner } = await import(resolve('dist/lib/runner.js'));
  const { DEFAULT_SETTINGS } = await import(resolve('dist/lib/config/settings.js'));
  const { parseAddressList } = await import(resolve('dist/lib/guest/validate.js'));
  const settings = { ...DEFAULT_SETTINGS, backend: variant };
  const lockPath = join(dir, 'lock');
  const ports = Array.from({ length: guests }, (_, i) => ({
    ifname: `vif${i + 1}.0`,
    guest: `guest${i + 1}`,
    bridge: 'xenbr0',
    mac: undefined,
    addresses: parseAddressList(`10.${100 + Math.floor(i / 250)}.${i % 250}.1`, { source: 'bench' }),
  }));
  const setupStart = performance.now();
  await applyFullState({ runner: createRunner(), settings, lockPath, log: () => {} }, ports);
  const setupMs = performance.now() - setupStart;

  const config = join(dir, 'vif-guard.conf');
  writeFileSync(config, `[general]\nbackend = ${variant}\n`);
  mkdirSync(join(dir, 'xs'), { recursive: true });
  const env = { ...process.env, VIF_GUARD_CONFIG: config, VIF_GUARD_LOCK: lockPath, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  const hook = (name) => [resolve(`dist/bundle/${name}.cjs`)];
  const times = [];
  for (let i = 0; i < runs; i += 1) {
    const common = ['--dev', 'vifbench.0', '--type-if', 'vif', '--bridge', 'xenbr0'];
    const start = performance.now();
    const up = spawnSync(process.execPath, [...hook('vif-up'), '--command', 'online', ...common, '--ip', '10.99.0.1'], { env, encoding: 'utf8' });
    times.push(performance.now() - start);
    if (up.status !== 0) throw new Error(`vif-up failed: ${up.stdout}${up.stderr}`);
    const down = spawnSync(process.execPath, [...hook('vif-down'), '--command', 'offline', ...common], { env, encoding: 'utf8' });
    if (down.status !== 0) throw new Error(`vif-down failed: ${down.stderr}`);
  }
  times.sort((a, b) => a - b);
  const medianMs = times[Math.floor(times.length / 2)];
  console.log(JSON.stringify({ variant, guests, runs, medianMs, minMs: times[0], maxMs: times[times.length - 1], setupMs }));
}
