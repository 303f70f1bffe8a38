// Bundle the hooks and the CLI into single files: no node_modules on the dom0, and a hook loads
// one file instead of hundreds of modules (hooks run on every guest start).
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

const hooks = {
  'vif-up': 'dist/hooks/vif-up.js',
  'vif-down': 'dist/hooks/vif-down.js',
  'vif-hotplug': 'dist/hooks/vif-hotplug.js',
  'vz-mount': 'dist/hooks/vz-mount.js',
  'vz-net': 'dist/hooks/vz-net.js',
};

const common = {
  outdir: 'dist/bundle',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __vgCreateRequire } from 'node:module'; const require = __vgCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  // `vif-guard --version` where no package.json is installed (lib/cli/main.ts).
  define: { VIF_GUARD_VERSION: JSON.stringify(version) },
};

await build({ ...common, entryPoints: { 'vif-guard': 'dist/lib/cli/main.js' } });
// Hooks spawn through node's child_process (runner.ts, `light`) and never load execa: leaving it out
// halves their bundle, and compiling the bundle is most of a hook's start-up after node's own.
await build({ ...common, entryPoints: hooks, external: ['execa'] });
