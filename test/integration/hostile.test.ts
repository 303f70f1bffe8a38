import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { $ } from 'zx';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CAN_USE_NETNS } from '../helpers/env.js';
import { Dom0Lab } from '../helpers/netns.js';

$.quiet = true;

/** What a hostile tenant, a careless admin or a broken tool can put in a value. */
const VALUES: string[] = [
  '; rm -rf /', '$(reboot)', '`id`', '| nc 127.0.0.1 1', '&& true', '1.2.3.4 -j ACCEPT', '-j ACCEPT', '--physdev-in vif+',
  '1.2.3.4\n-A FORWARD -j ACCEPT', '1.2.3.4\u0000', 'x'.repeat(5000), '１.２.３.４', 'vm\u202e01', '😀', '0.0.0.0/0', '::/0',
  '10.0.0.0/1', '10.0.0.1/33', '"', "'", '\\', '%s%n', '*', 'vif+', '   ', '..', '../../etc/passwd', '-', '--help', 'ÿ',
  '\t', 'a'.repeat(16), '1.2.3.4,5.6.7.8', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00', '__proto__', 'constructor', 'valueOf',
  '127.0.0.1', '224.0.0.1', '::1', 'COMMIT', '*filter', '-F', ':INPUT ACCEPT',
];

interface Outcome {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A refusal is exit 2 (or a hook's fail-closed status) with a one-line `vif-guard:` message; never a stack trace. */
function expectCleanRefusal(outcome: Outcome, allowSuccess: boolean, what: string): void {
  const lines = outcome.stderr.trim().split('\n').filter(Boolean);
  expect(outcome.stderr, what).not.toMatch(/^\s+at .+\(.+:\d+:\d+\)$/m);
  expect(outcome.stderr, what).not.toMatch(/TypeError|ReferenceError|SyntaxError|RangeError/);
  if (outcome.exitCode === 0) {
    expect(allowSuccess, `${what} was accepted`).toBe(true);
    return;
  }
  expect([2, 6, 7], what).toContain(outcome.exitCode);
  expect(lines.at(-1) ?? '', what).toMatch(/^vif-guard: \S/);
}

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

describe.skipIf(!CAN_USE_NETNS)('hostile input: a clear refusal, no crash, no change', () => {
  const root = mkdtempSync(join(tmpdir(), 'vif-guard-hostile-'));
  const lab = new Dom0Lab('10.83.1');
  let tried = 0;
  const config = join(root, 'vif-guard.conf');
  const cli = (args: string[], env: Record<string, string> = {}) =>
    $({ env: { ...process.env, VIF_GUARD_CONFIG: config, VIF_GUARD_LOCK: join(root, 'lock'), VIF_GUARD_STATE_DIR: join(root, 'state'), ...env } })`node dist/bundle/vif-guard.cjs ${args}`
      .nothrow()
      .then((r) => ({ exitCode: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr }));

  beforeAll(async () => {
    mkdirSync(join(root, 'etc/vz/conf'), { recursive: true });
    writeFileSync(join(root, 'etc/vz/vz.conf'), 'VIRTUOZZO=yes\n');
    writeFileSync(join(root, 'etc/vz/conf/101.conf'), 'IPTABLES="iptable_filter"\n');
    writeFileSync(config, `[openvz]\nvz_conf = ${join(root, 'etc/vz/vz.conf')}\nvz_conf_dir = ${join(root, 'etc/vz/conf')}\nmodules_load_file = ${join(root, 'ml.conf')}\n`);
    await lab.create();
    await lab.inDom0('iptables', '-A', 'FORWARD', '-s', '192.0.2.0/24', '-j', 'ACCEPT');
  }, 60_000);

  afterAll(async () => {
    await lab.destroy();
    rmSync(root, { recursive: true, force: true });
    process.stderr.write(`vif-guard hostile-input corpus: ${tried} inputs tried\n`);
  });

  it('domU configs: ip=, vifname=, mac=, name and whole-file garbage', async () => {
    const cases = VALUES.flatMap((value, i) => [
      [`ip-${i}`, `vif = [ 'ip=${value}' ]\n`],
      [`vifname-${i}`, `vif = [ 'vifname=${value},ip=10.0.0.1' ]\n`],
      [`mac-${i}`, `vif = [ 'mac=${value},ip=10.0.0.1' ]\n`],
      [`name-${i}`, `name = "${value}"\nvif = [ 'ip=10.0.0.1' ]\n`],
      [`raw-${i}`, value],
    ]);
    await inBatches(cases, 8, async ([name = '', text = '']) => {
      const file = join(root, `${name}.cfg`);
      writeFileSync(file, text);
      tried += 1;
      expectCleanRefusal(await cli(['check-config', file]), true, `${name}: ${JSON.stringify(text.slice(0, 60))}`);
    });
  }, 300_000);

  it('CLI arguments', async () => {
    const cases = VALUES.flatMap((value) => [
      ['ve', 'allow', value, 'recent'],
      ['ve', 'allow', '101', value, '--dry-run'],
      ['ve', 'check', '101', '--rule', value],
      [value],
      ['sync', value],
    ]);
    await inBatches(cases, 8, async (args) => {
      tried += 1;
      // `--help` and `--dry-run` may legitimately succeed; `ve check` answers 0 (fine) or 1 (problems found).
      const outcome = await cli(args);
      const checked = args.includes('--rule') && outcome.exitCode === 1 ? { ...outcome, exitCode: 0 } : outcome;
      expectCleanRefusal(checked, args.includes('--rule') || args.includes('--help') || args.includes('--dry-run'), JSON.stringify(args).slice(0, 80));
    });
  }, 300_000);

  it('zone files and block arguments: refused with the line number, nothing saved, nothing in the kernel', async () => {
    // In the lab's dom0 (the nftables backend's table lives there), with vif-guard's state under root.
    const state = join(root, 'state');
    const inDom0 = (args: string[]) =>
      $`ip netns exec ${lab.dom0} env VIF_GUARD_CONFIG=${config} VIF_GUARD_LOCK=${join(root, 'lock')} VIF_GUARD_STATE_DIR=${state} node dist/bundle/vif-guard.cjs ${args}`
        .nothrow()
        .then((r) => ({ exitCode: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr }));
    const ruleset = async () => (await lab.inDom0('nft', 'list', 'ruleset')).stdout;
    const before = await ruleset();
    const zones = VALUES.flatMap((value, i) => {
      const good = '198.51.100.0/24\n2001:db8:bad::/48\n';
      return [
        [`zone-only-${i}`, `${value}\n`],
        [`zone-mixed-${i}`, `# feed\n${good}${value}\n${good}`],
      ];
    });
    zones.push(['zone-empty', ''], ['zone-comments', '# nothing\n; here\n'], ['zone-binary', '\u0000\u0001\u0002'], ['zone-html', '<html><body>502 Bad Gateway</body></html>\n']);
    zones.push(['zone-huge-line', `${'1'.repeat(100_000)}\n`], ['zone-slash0', '0.0.0.0/0\n'], ['zone-v6-slash0', '::/0\n']);
    await inBatches(zones, 8, async ([name = '', text = '']) => {
      const file = join(root, `${name}.zone`);
      writeFileSync(file, text);
      tried += 1;
      const outcome = await inDom0(['block', 'guest1', '--zone', file]);
      // A zone whose every line is a prefix (some hostile values are, e.g. 127.0.0.1) may be accepted.
      expectCleanRefusal(outcome, true, `${name}: ${JSON.stringify(text.slice(0, 40))}`);
      if (outcome.exitCode !== 0 && /malformed/.test(outcome.stderr)) expect(outcome.stderr).toMatch(/line \d+: /);
    });
    const args = VALUES.flatMap((value) => [
      ['block', value, '--cidr', '198.51.100.0/24'],
      ['block', 'guest1', '--cidr', value],
      ['block', 'guest1', '--cidr', '198.51.100.0/24', '--name', value],
      ['unblock', value],
      ['block', 'guest1', '--zone', value],
    ]);
    await inBatches(args, 8, async (argv) => {
      tried += 1;
      expectCleanRefusal(await inDom0(argv), true, JSON.stringify(argv).slice(0, 80));
    });
    // No guest runs in this dom0, so even what was accepted only changed the saved lists: the kernel is as it was.
    expect(await ruleset()).toBe(before);
    for (const list of JSON.parse((await inDom0(['block', '--list', '--json'])).stdout) as { target: string; name: string }[]) {
      // What a Xen domain name may be (isGuestName), never a path, option or shell syntax.
      expect(list.target).toMatch(/^[A-Za-z0-9_:-][A-Za-z0-9_.:-]*$/);
      expect(list.name).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/);
    }
  }, 300_000);

  it('vzctl configs: IPTABLES, NETIF, NETFILTER', async () => {
    const cases = VALUES.flatMap((value, i) => [
      [`${200 + i * 3}`, `IPTABLES="${value}"\n`],
      [`${201 + i * 3}`, `NETIF="ifname=eth0,host_ifname=${value}"\n`],
      [`${202 + i * 3}`, `NETFILTER="${value}"\n`],
    ]);
    await inBatches(cases, 8, async ([ctid = '', text = '']) => {
      writeFileSync(join(root, 'etc/vz/conf', `${ctid}.conf`), text);
      tried += 1;
      expectCleanRefusal(await cli(['ve', 'list', ctid]), true, `${ctid}: ${JSON.stringify(text.slice(0, 60))}`);
    });
  }, 300_000);

  it('xenstore values through the online hook: fail closed, nothing in the kernel changes', async () => {
    const doubles = resolve('test/fixtures/xenstore-double');
    const before = (await lab.inDom0('iptables-save')).stdout.split('\n').filter((l) => !l.startsWith('#')).join('\n');
    const cases = VALUES.flatMap((value, i) => (['ip', 'mac', 'vifname', 'bridge'] as const).map((node, n) => ({ value, node, domid: 100 + i * 4 + n })));
    await inBatches(cases, 6, async ({ value, node, domid }) => {
      const xs = join(root, `xs-${node}-${domid}`);
      const base = join(xs, `local/domain/0/backend/vif/${domid}/0`);
      const nodes: Record<string, string> = { ip: '10.0.0.1', mac: '00:16:3e:00:00:01', bridge: 'xenbr0', [node]: value };
      for (const [key, text] of Object.entries(nodes)) {
        mkdirSync(join(base, key), { recursive: true });
        writeFileSync(join(base, key, '.value'), text.replace(/\0/g, ''));
      }
      const env = [`PATH=${doubles}:/usr/sbin:/usr/bin:/sbin:/bin`, `XS_ROOT=${xs}`, `VIF_GUARD_CONFIG=${config}`, `VIF_GUARD_LOCK=${join(root, 'lock')}`, `VIF_GUARD_STATE_DIR=${join(root, 'state')}`];
      const result = await $`ip netns exec ${lab.dom0} env -i ${env} node dist/bundle/vif-up.cjs --command online --dev vif${domid}.0 --xenbus-path backend/vif/${domid}/0`.nothrow();
      tried += 1;
      const outcome = { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
      // A hook's one-line reason goes to stdout (for fatal) and its log to stderr.
      expect(outcome.stderr).not.toMatch(/TypeError|^\s+at .+:\d+:\d+\)$/m);
      if (outcome.exitCode !== 0) expect(outcome.stdout.trim().split('\n')).toHaveLength(1);
      // Hostile values that are still valid (an empty or spaced ip=) may protect the vif; nothing else may change.
      if (outcome.exitCode !== 0) await lab.inDom0('iptables-save').then((r) => expect(r.stdout).not.toContain(`vif${domid}.0 `));
      if (outcome.exitCode !== 0) await lab.inDom0('nft', 'list', 'ruleset').then((r) => expect(r.stdout).not.toContain(`"vif${domid}.0"`));
    });
    const after = (await lab.inDom0('iptables-save')).stdout.split('\n').filter((l) => !l.startsWith('#') && !l.includes('vif-guard')).join('\n');
    expect(after).toBe(before.split('\n').filter((l) => !l.includes('vif-guard')).join('\n'));
  }, 600_000);

  it('tried at least 200 inputs', () => {
    expect(tried).toBeGreaterThanOrEqual(200);
  });
});
