import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { $ } from 'zx';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

$.quiet = true;

const BIN = resolve('test/fixtures/openvz-bin');

/** An OpenVZ node's config files in a temp dir, and the vzctl/modprobe/vzlist doubles that record what vif-guard asks. */
class FakeNode {
  readonly root = mkdtempSync(join(tmpdir(), 'vif-guard-vz-'));
  readonly log = join(this.root, 'calls.log');
  readonly vzConf = join(this.root, 'etc/vz/vz.conf');
  readonly modulesLoad = join(this.root, 'modules-load.conf');

  constructor(global = '') {
    mkdirSync(join(this.root, 'etc/vz/conf'), { recursive: true });
    mkdirSync(join(this.root, 'state/running'), { recursive: true });
    writeFileSync(this.vzConf, `## Global parameters\nVIRTUOZZO=yes\n${global}LOCKDIR=/vz/lock\n`);
    writeFileSync(join(this.root, 'vif-guard.conf'), `[openvz]\nvz_conf = ${this.vzConf}\nvz_conf_dir = ${join(this.root, 'etc/vz/conf')}\nmodules_load_file = ${this.modulesLoad}\n`);
    writeFileSync(this.log, '');
  }

  container(ctid: string, text: string, running = false): string {
    const file = join(this.root, 'etc/vz/conf', `${ctid}.conf`);
    writeFileSync(file, text);
    if (running) writeFileSync(join(this.root, 'state/running', ctid), '');
    return file;
  }

  async ve(args: string[], env: Record<string, string> = {}) {
    const result = await $({
      env: { ...process.env, VIF_GUARD_CONFIG: join(this.root, 'vif-guard.conf'), VIF_GUARD_BIN_DIR: BIN, VZ_LOG: this.log, VZ_STATE: join(this.root, 'state'), VIF_GUARD_STATE_DIR: join(this.root, 'var'), ...env },
    })`node dist/bundle/vif-guard.cjs ve ${args}`.nothrow();
    return { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
  }

  /** Recorded calls: 'vzctl set' matches `vzctl [set] ...`, 'modprobe' every modprobe. */
  calls(what: string): string[] {
    const [tool = '', verb] = what.split(' ');
    const prefix = verb ? `${tool} [${verb}]` : `${tool} `;
    return readFileSync(this.log, 'utf8').split('\n').filter((line) => line.startsWith(prefix));
  }
}

describe('vif-guard ve (OpenVZ module whitelist)', () => {
  let node: FakeNode;
  beforeEach(() => {
    node = new FakeNode();
  });
  afterEach(() => rmSync(node.root, { recursive: true, force: true }));

  it('allow merges with the container\'s list, adds dependencies and runs one vzctl set with the whole list', async () => {
    node.container('101', 'ONBOOT="yes"\nIPTABLES="ip_tables iptable_filter ipt_LOG "\n');
    const result = await node.ve(['allow', '101', 'recent', 'state']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(node.calls('vzctl set')).toEqual(['vzctl [set] [101] [--iptables] [ip_tables iptable_filter ipt_LOG ip_conntrack ipt_state ipt_recent] [--save]']);
    expect(node.calls('modprobe')).toEqual(['modprobe [ip_tables]', 'modprobe [iptable_filter]', 'modprobe [xt_LOG]', 'modprobe [nf_conntrack]', 'modprobe [xt_state]', 'modprobe [xt_recent]']);
    expect(readFileSync(node.modulesLoad, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'))).toEqual(['ip_tables', 'iptable_filter', 'nf_conntrack', 'xt_LOG', 'xt_recent', 'xt_state']);
    expect(result.stderr).toContain('also allowed, as dependencies: ip_tables, ip_conntrack');
  });

  it('warns about the ipt_state trap and adds iptable_filter', async () => {
    node.container('102', 'IPTABLES="ipt_LOG"\n');
    const result = await node.ve(['allow', '102', 'ipt_state']);
    expect(result.stderr).toContain('also allowed: iptable_filter (without it the container has no filter table');
    expect(node.calls('vzctl set')[0]).toContain('[ip_tables iptable_filter ipt_LOG ip_conntrack ipt_state]');
  });

  it('a running container: says a restart is needed, or restarts it with --restart', async () => {
    node.container('103', 'IPTABLES="iptable_filter"\n', true);
    const plain = await node.ve(['allow', '103', 'nat']);
    expect(plain.stderr).toContain('the new list applies after a restart (vzctl restart 103, or --restart)');
    const check = await node.ve(['check', '103', '--rule', '-t nat -A POSTROUTING -j MASQUERADE'], { VIF_GUARD_SYS: node.root });
    expect(check.stdout).toContain("container 103's module list changed while it was running");
    node.container('104', 'IPTABLES="iptable_filter"\n', true);
    await node.ve(['allow', '104', 'nat', '--restart']);
    expect(node.calls('vzctl set').pop()).toBe('vzctl [set] [104] [--iptables] [ip_tables iptable_filter ip_conntrack iptable_nat] [--save] [--setmode] [restart]');
  });

  it('uses --netfilter when vzctl has it and the set is one of its modes', async () => {
    node.container('105', 'IPTABLES="iptable_filter"\n');
    await node.ve(['allow', '105', 'mangle'], { VZCTL_NETFILTER: '1' });
    expect(node.calls('vzctl set')).toEqual(['vzctl [set] [105] [--netfilter] [stateless] [--save]']);
  });

  it('deny removes what depends on the denied module', async () => {
    node.container('106', 'IPTABLES="ip_tables iptable_filter ip_conntrack ipt_state iptable_nat ipt_recent "\n');
    const result = await node.ve(['deny', '106', 'conntrack']);
    expect(result.stderr).toContain('also removed, as they depend on it: ipt_state, iptable_nat');
    expect(node.calls('vzctl set')).toEqual(['vzctl [set] [106] [--iptables] [ip_tables iptable_filter ipt_recent] [--save]']);
  });

  it('--dry-run prints the vzctl command and runs nothing', async () => {
    node.container('107', 'IPTABLES="iptable_filter"\n');
    const result = await node.ve(['allow', '107', 'recent', '--dry-run']);
    expect(result.stderr).toContain('would run: vzctl set 107 --iptables "ip_tables iptable_filter ipt_recent" --save');
    expect(result.stderr).toContain('would load on the host: ip_tables iptable_filter xt_recent');
    expect(node.calls('vzctl set')).toEqual([]);
    expect(node.calls('modprobe')).toEqual([]);
    expect(existsSync(node.modulesLoad)).toBe(false);
  });

  it('--all rewrites the global IPTABLES= in vzctl\'s saved form and keeps every other line', async () => {
    node.container('108', 'IPTABLES="iptable_filter"\n');
    node.container('109', 'ONBOOT="yes"\n');
    writeFileSync(node.vzConf, '## Global parameters\nIPTABLES="ipt_REJECT ipt_tos ipt_limit ipt_multiport iptable_filter iptable_mangle"\nLOCKDIR=/vz/lock\n');
    const result = await node.ve(['allow', 'all', 'recent']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(readFileSync(node.vzConf, 'utf8')).toBe(
      '## Global parameters\nIPTABLES="ip_tables iptable_filter iptable_mangle ipt_limit ipt_multiport ipt_tos ipt_REJECT ipt_recent "\nLOCKDIR=/vz/lock\n',
    );
    expect(result.stderr).toContain('containers with their own IPTABLES or NETFILTER ignore the global list: 108');
    expect((await node.ve(['list', '109'])).stdout).toContain(`container 109: ip_tables iptable_filter iptable_mangle ipt_limit ipt_multiport ipt_tos ipt_REJECT ipt_recent\n  from IPTABLES in ${node.vzConf}`);
  });

  it.each([
    [['allow', '101', 'xt_bogus'], /unknown iptables module `xt_bogus`: valid names are/],
    [['allow', '10a', 'recent'], /Expected `CTID` to be a container number such as 101, got `10a`/],
    [['allow', '999', 'recent'], /no container 999: .*999.conf does not exist/],
    [['list', '110'], /Expected `IPTABLES` to be vzctl module names .*got `xt_recent` \(.*110.conf line 1\)/],
  ])('%j: a clear error and nothing changed', async (args, message) => {
    node.container('101', 'IPTABLES="iptable_filter"\n');
    node.container('110', 'IPTABLES="xt_recent"\n');
    const before = readFileSync(node.vzConf, 'utf8');
    const result = await node.ve(args);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(node.calls('vzctl set')).toEqual([]);
    expect(node.calls('modprobe')).toEqual([]);
    expect(readFileSync(node.vzConf, 'utf8')).toBe(before);
  });

  it('a full disk when persisting the host modules: a clear error, and vzctl is never called', async () => {
    node.container('112', 'IPTABLES="iptable_filter"\n');
    const full = join(node.root, 'full');
    mkdirSync(full);
    writeFileSync(join(node.root, 'vif-guard.conf'), `[openvz]\nvz_conf = ${node.vzConf}\nvz_conf_dir = ${join(node.root, 'etc/vz/conf')}\nmodules_load_file = ${join(full, 'modules.conf')}\n`);
    // A 16 KiB tmpfs filled up, in a private mount namespace: the host's disks are never touched.
    const script = `mount -t tmpfs -o size=16k tmpfs ${full} && (dd if=/dev/zero of=${full}/fill bs=1k count=64 2>/dev/null; true) && exec node dist/bundle/vif-guard.cjs ve allow 112 recent`;
    const env = { ...process.env, VIF_GUARD_CONFIG: join(node.root, 'vif-guard.conf'), VIF_GUARD_BIN_DIR: BIN, VZ_LOG: node.log, VZ_STATE: join(node.root, 'state') };
    const result = await $({ env })`unshare -m --propagation private sh -c ${script}`.nothrow();
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toMatch(new RegExp(`^vif-guard: cannot write ${full}/modules.conf: ENOSPC`));
    expect(node.calls('vzctl set')).toEqual([]);
  });

  it('check explains a failing rule: not allowed for the container, and not loaded on the host', async () => {
    node.container('111', 'IPTABLES="ip_tables iptable_filter "\n');
    mkdirSync(join(node.root, 'module', 'ip_tables'), { recursive: true });
    mkdirSync(join(node.root, 'module', 'iptable_filter'), { recursive: true });
    const result = await node.ve(['check', '111', '--rule', '-A INPUT -p tcp --dport 22 -m recent --set --name ssh'], { VIF_GUARD_SYS: node.root, VIF_GUARD_PROC: node.root });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toContain('container 111 is not allowed ipt_recent');
    expect(result.stdout).toContain('fix: vif-guard ve allow 111 ipt_recent --restart');
    expect(result.stdout).toContain('the host has not loaded xt_recent');
    const fine = await node.ve(['check', '111', '--rule', '-A INPUT -j ACCEPT'], { VIF_GUARD_SYS: node.root, VIF_GUARD_PROC: node.root });
    expect(fine.exitCode).toBe(0);
  });
});
