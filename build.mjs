// Bundle the hooks and the CLI into single files: no node_modules on the dom0, and a hook loads
// one file instead of hundreds of modules (hooks run on every guest start).
import { build } from 'esbuild';

const entries = {
  'vif-up': 'dist/hooks/vif-up.js',
  'vif-down': 'dist/hooks/vif-down.js',
  'vif-hotplug': 'dist/hooks/vif-hotplug.js',
  'vz-mount': 'dist/hooks/vz-mount.js',
  'vz-net': 'dist/hooks/vz-net.js',
  'vif-guard': 'dist/lib/cli/main.js',
};

await build({
  entryPoints: entries,
  outdir: 'dist/bundle',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: false,
  legalComments: 'none',
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __vgCreateRequire } from 'node:module'; const require = __vgCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
