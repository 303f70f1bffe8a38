// Bundle the hooks and the CLI into single files: no node_modules on the dom0, and a hook loads
// one file instead of hundreds of modules (hooks run on every guest start).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

const hooks = {
  'vif-up': 'dist/hooks/vif-up.js',
  'vif-down': 'dist/hooks/vif-down.js',
  'vif-hotplug': 'dist/hooks/vif-hotplug.js',
  'vz-mount': 'dist/hooks/vz-mount.js',
  'vz-net': 'dist/hooks/vz-net.js',
};

/*
 * Each entry is three files: `<name>.cjs`, a loader of a few lines that node runs; `<name>.bundle.cjs`,
 * the code; and `<name>.<digest>.v8`, V8's code cache for it. The loader compiles the bundle with the
 * cache, so V8 deserializes bytecode instead of parsing and compiling 70-370 KB of JavaScript on every
 * start. Measured on a 2-core VM against the ES module bundles: ~8-10 ms of a hook's start-up, 25-35 ms
 * of a CLI command's. CommonJS because node 20 cannot give an ES module a code cache (and its ES module
 * loader alone costs 15-20 ms more). The cache is written by this
 * build and again by install.sh with the node that runs the hooks: V8 rejects a cache made by another
 * V8 or with other flags, and the loader then compiles as usual. V8 checks only the source's length,
 * so the cache is named after the bundle's digest: a rebuilt bundle never meets an old cache.
 */
const common = {
  outdir: 'dist/bundle',
  outExtension: { '.js': '.bundle.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  // The bundle's own file, for lib/demo (the hooks and probe.py beside it) and lib/cli (package.json).
  banner: { js: "var __vgUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
  // yargs imports cliui, whose ES module entry wraps help text every N characters, mid-word ("p\nackets");
  // its CommonJS build wraps on words (wrap-ansi).
  alias: { cliui: './node_modules/cliui/build/index.cjs' },
  // `vif-guard --version` where no package.json is installed (lib/cli/main.ts).
  define: { VIF_GUARD_VERSION: JSON.stringify(version), 'import.meta.url': '__vgUrl' },
};

const loader = (name, cache) => `#!/usr/bin/env node
'use strict';
// vif-guard ${name}: runs ${name}.bundle.cjs from V8's code cache ${cache} (see build.mjs).
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { createRequire, wrap } = require('node:module');
const vm = require('node:vm');
const code = join(__dirname, '${name}.bundle.cjs');
const cache = join(__dirname, '${cache}');
const source = wrap(readFileSync(code, 'utf8'));
// Only as the sole argument, never from the environment: a variable inherited by a hook must not turn it into a no-op.
const mode = process.argv.length === 3 ? { '--write-code-cache': 'write', '--check-code-cache': 'check' }[process.argv[2]] : undefined;
if (mode === 'write') {
  // Every function compiled now, not only the ones this run would call.
  const v8 = require('node:v8');
  v8.setFlagsFromString('--no-lazy');
  const script = new vm.Script(source, { filename: code });
  v8.setFlagsFromString('--lazy');
  writeFileSync(cache + '.tmp', script.createCachedData(), { mode: 0o644 });
  renameSync(cache + '.tmp', cache);
} else {
  let cachedData;
  try {
    cachedData = readFileSync(cache);
  } catch {}
  const script = new vm.Script(source, { filename: code, cachedData, importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER });
  // For install.sh and \`vif-guard doctor\`: a cache V8 rejects (node upgraded since install) costs every start its compile time again.
  const state = cachedData === undefined ? 'missing' : script.cachedDataRejected ? 'rejected' : 'used';
  if (mode === 'check') process.stdout.write(\`\${state} ${cache}\\n\`);
  else {
    globalThis.__vifGuardCodeCache = state;
    // Names this code for what it keeps between runs (sync's memo): a rebuilt bundle never matches an old one.
    globalThis.__vifGuardBuild = '${cache}';
    const mod = { exports: {}, filename: code, id: code };
    script.runInThisContext()(mod.exports, createRequire(code), mod, code, __dirname);
  }
}
`;

rmSync('dist/bundle', { recursive: true, force: true });
await build({ ...common, entryPoints: { 'vif-guard': 'dist/lib/cli/main.js' } });
// Hooks spawn through node's child_process (runner.ts, `light`) and never load execa: leaving it out
// halves their bundle, and compiling the bundle is most of a hook's start-up after node's own.
await build({ ...common, entryPoints: hooks, external: ['execa'] });

for (const name of ['vif-guard', ...Object.keys(hooks)]) {
  // The entries' `#!` line: node's loader strips it, inside the loader's function wrapper it is an error.
  const bundle = readFileSync(`dist/bundle/${name}.bundle.cjs`, 'utf8').replace(/^#!.*\n/, '');
  writeFileSync(`dist/bundle/${name}.bundle.cjs`, bundle);
  chmodSync(`dist/bundle/${name}.bundle.cjs`, 0o644);
  const digest = createHash('sha256').update(bundle).digest('hex').slice(0, 12);
  writeFileSync(`dist/bundle/${name}.cjs`, loader(name, `${name}.${digest}.v8`), { mode: 0o755 });
  const made = spawnSync(process.execPath, [`dist/bundle/${name}.cjs`, '--write-code-cache'], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error(`could not write the code cache of ${name}`);
}
