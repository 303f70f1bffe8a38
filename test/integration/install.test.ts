import { afterEach, describe, expect, it } from 'vitest';
import { $ } from 'zx';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAN_USE_NETNS } from '../helpers/env.js';

$.quiet = true;

// install.sh checks for iptables and friends; on a machine without them this is skipped like the netns tests.
describe.skipIf(!CAN_USE_NETNS)('install.sh (staged with DESTDIR)', () => {
  const stages: string[] = [];
  const stage = () => {
    const dir = mkdtempSync(join(tmpdir(), 'vif-guard-stage-'));
    stages.push(dir);
    return dir;
  };
  const install = (destdir: string, ...args: string[]) =>
    $({ env: { ...process.env, DESTDIR: destdir } })`./install.sh --prefix /usr --no-deps ${args}`.nothrow();

  afterEach(() => {
    for (const dir of stages.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('installs the hook, the standalone script, the bundle, config and kernel settings', async () => {
    const dir = stage();
    const result = await install(dir);
    expect(result.exitCode, result.stderr).toBe(0);
    const hook = join(dir, 'etc/xen/scripts/vif-post.d/vif-guard.hook');
    expect(statSync(hook).mode & 0o111).not.toBe(0);
    expect(readFileSync(hook, 'utf8')).toContain('vif_guard_bin="/usr/lib/vif-guard/bin"');
    expect(readFileSync(join(dir, 'etc/xen/scripts/vif-guard'), 'utf8')).toContain('exec "/usr/lib/vif-guard/bin/vif-hotplug"');
    expect(readFileSync(join(dir, 'usr/lib/vif-guard/bin/vif-up'), 'utf8')).toMatch(/^#!\/bin\/sh\n.*\nexec \/\S+node \/usr\/lib\/vif-guard\/vif-up.cjs "\$@"\n$/);
    expect(readFileSync(join(dir, 'etc/sysctl.d/60-vif-guard.conf'), 'utf8')).toContain('net.bridge.bridge-nf-call-iptables = 1');
    expect(readFileSync(join(dir, 'etc/modules-load.d/vif-guard.conf'), 'utf8')).toContain('br_netfilter');
    expect(existsSync(join(dir, 'etc/vif-guard/vif-guard.conf'))).toBe(true);
    const unit = readFileSync(join(dir, 'etc/systemd/system/vif-guard-sync.service'), 'utf8');
    expect(unit).toContain('ExecStart=/usr/sbin/vif-guard sync');
    expect(unit).toMatch(/^After=.*netfilter-persistent\.service.*iptables\.service/m);
    expect(unit).toMatch(/^PartOf=.*nftables\.service/m);
    expect(existsSync(join(dir, 'etc/systemd/system/vif-guard-resync.timer'))).toBe(true);
    // The wrappers point at the final paths; run the staged bundle itself.
    const cli = await $`node ${join(dir, 'usr/lib/vif-guard/vif-guard.cjs')} --help`;
    expect(cli.stdout).toContain('check-config');
    // Help wraps between words (cliui's ES module entry, which esbuild picked before, cut words anywhere).
    expect(cli.stdout.replace(/\n\s+/g, ' ')).toContain('One line per guest port: state and packets dropped as spoofed');
    // No package.json is installed: the version is the one built into the bundle.
    const version = await $({ cwd: dir })`node ${join(dir, 'usr/lib/vif-guard/vif-guard.cjs')} --version`;
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
    // Every entry starts from a code cache this node accepts.
    expect(readdirSync(join(dir, 'usr/lib/vif-guard')).filter((name) => name.endsWith('.v8'))).toHaveLength(6);
    const check = await $`node ${join(dir, 'usr/lib/vif-guard/vif-up.cjs')} --check-code-cache`;
    expect(check.stdout).toMatch(/^used vif-up\.[0-9a-f]{12}\.v8\n$/);
  }, 60_000);

  it('rewrites a code cache node rejects, and removes what an earlier install used and this one does not', async () => {
    const dir = stage();
    expect((await install(dir)).exitCode).toBe(0);
    const lib = join(dir, 'usr/lib/vif-guard');
    const cache = readdirSync(lib).find((name) => name.startsWith('vif-up.') && name.endsWith('.v8')) ?? '';
    writeFileSync(join(lib, cache), 'not a V8 cache');
    const rejected = await $`node ${join(lib, 'vif-up.cjs')} --check-code-cache`;
    expect(rejected.stdout).toMatch(/^rejected /);
    // The hook still runs, compiling as usual.
    expect((await $`node ${join(lib, 'vif-up.cjs')} --help`.nothrow()).stderr).toContain('vif-guard');
    // What an earlier version installed: an ES module bundle and an older cache, both in the manifest.
    const manifest = join(dir, 'var/lib/vif-guard/install-manifest');
    for (const name of ['vif-up.mjs', 'vif-up.000000000000.v8']) {
      writeFileSync(join(lib, name), 'old');
      writeFileSync(manifest, `${readFileSync(manifest, 'utf8')}/usr/lib/vif-guard/${name}\n`);
    }
    const again = await install(dir);
    expect(again.exitCode, again.stderr).toBe(0);
    const used = await $`node ${join(lib, 'vif-up.cjs')} --check-code-cache`;
    expect(used.stdout).toMatch(/^used /);
    expect(existsSync(join(lib, 'vif-up.mjs'))).toBe(false);
    expect(existsSync(join(lib, 'vif-up.000000000000.v8'))).toBe(false);
    expect(readFileSync(manifest, 'utf8')).not.toContain('000000000000');
    expect(readFileSync(manifest, 'utf8')).toContain(`/usr/lib/vif-guard/${cache}`);
  }, 60_000);

  it('installs systemd units that systemd-analyze accepts', async () => {
    const dir = stage();
    await install(dir);
    const check = mkdtempSync(join(tmpdir(), 'vif-guard-units-'));
    stages.push(check);
    const units = ['vif-guard-sync.service', 'vif-guard-resync.service', 'vif-guard-resync.timer'];
    for (const unit of units) {
      // verify insists that ExecStart exists; the staged one is only there after a real install.
      const text = readFileSync(join(dir, 'etc/systemd/system', unit), 'utf8').replace('ExecStart=/usr/sbin/vif-guard', 'ExecStart=/bin/true');
      writeFileSync(join(check, unit), text);
    }
    const verify = await $`systemd-analyze verify --man=no ${units.map((unit) => join(check, unit))}`.nothrow();
    expect(verify.exitCode, verify.stderr).toBe(0);
  }, 60_000);

  it('is idempotent: a second run installs nothing', async () => {
    const dir = stage();
    await install(dir);
    const again = await install(dir);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).not.toContain('installed ');
  }, 60_000);

  it('never overwrites a file it did not install, and keeps the admin\'s config', async () => {
    const dir = stage();
    mkdirSync(join(dir, 'etc/xen/scripts/vif-post.d'), { recursive: true });
    writeFileSync(join(dir, 'etc/xen/scripts/vif-post.d/vif-guard.hook'), '# mine\n');
    const refused = await install(dir);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toContain('vif-guard.hook exists and was not installed by vif-guard');
    expect(readFileSync(join(dir, 'etc/xen/scripts/vif-post.d/vif-guard.hook'), 'utf8')).toBe('# mine\n');

    const other = stage();
    mkdirSync(join(other, 'etc/vif-guard'), { recursive: true });
    writeFileSync(join(other, 'etc/vif-guard/vif-guard.conf'), '[general]\nnotrack = no\n');
    const kept = await install(other);
    expect(kept.exitCode).toBe(0);
    expect(kept.stdout).toContain('keeping your /etc/vif-guard/vif-guard.conf');
    expect(readFileSync(join(other, 'etc/vif-guard/vif-guard.conf'), 'utf8')).toBe('[general]\nnotrack = no\n');
  }, 60_000);

  it('--uninstall removes exactly what it installed', async () => {
    const dir = stage();
    mkdirSync(join(dir, 'etc/xen/scripts/vif-post.d'), { recursive: true });
    writeFileSync(join(dir, 'etc/xen/scripts/vif-post.d/00-admin.hook'), '# admin\n');
    await install(dir);
    const result = await install(dir, '--uninstall');
    expect(result.exitCode, result.stderr).toBe(0);
    const left = (await $`find ${dir} -type f`).stdout.trim().split('\n').map((path) => path.slice(dir.length));
    expect(left).toEqual(['/etc/xen/scripts/vif-post.d/00-admin.hook']);
  }, 60_000);

  it('--dry-run changes nothing', async () => {
    const dir = stage();
    const result = await install(dir, '--dry-run');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('would run: install');
    expect((await $`find ${dir} -type f`).stdout.trim()).toBe('');
  }, 60_000);
});
