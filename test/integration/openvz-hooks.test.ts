import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { $ } from 'zx';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CAN_USE_NETNS, VARIANTS } from '../helpers/env.js';
import { Dom0Lab, listen, sendFrame } from '../helpers/netns.js';

$.quiet = true;
const IN_DOM0 = resolve('test/fixtures/in-dom0.sh');
// What vzctl gives an action script (openvz.md 2.3): nothing else, not even the caller's environment.
const VZ_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

describe.skipIf(!CAN_USE_NETNS).each(VARIANTS)('OpenVZ hooks and veth protection on iptables-%s', (variant) => {
  const subnet = variant === 'nft' ? '10.82.1' : '10.82.2';
  const lab = new Dom0Lab(subnet, 'vmbr0');
  const root = mkdtempSync(join(tmpdir(), 'vif-guard-vzhooks-'));
  const log = join(root, 'calls.log');
  const stage = (path: string) => join(root, 'stage', path);
  const mac = (ctid: number) => `00:18:51:00:01:${String(ctid - 100).padStart(2, '0')}`;

  /** Run a command on the node as vzctl would: inside the HN namespace, with the staged /etc/vz. */
  async function onNode(env: Record<string, string>, argv: string[]) {
    const envArgs = Object.entries({ HOME: '/', TERM: 'linux', PATH: VZ_PATH, ...env }).map(([k, v]) => `${k}=${v}`);
    const result = await $`ip netns exec ${lab.dom0} unshare -m --propagation private ${IN_DOM0} ${root} env -i ${envArgs} ${argv} </dev/null`.timeout('60s').nothrow();
    return { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
  }
  const vpsMount = (ctid: number) => onNode({ VEID: String(ctid), VE_CONFFILE: `/etc/vz/conf/${ctid}.conf` }, ['/etc/vz/conf/vps.mount']);
  // /usr/sbin/vznetcfg from vzctl (bin/vznetcfg.in, openvz.md 4.2), verbatim.
  const vznetcfg = (ctid: number, ...args: string[]) =>
    onNode({ VEID: String(ctid) }, ['sh', '-c', '. /etc/vz/vznet.conf; if [ -n "$EXTERNAL_SCRIPT" -a -x "$EXTERNAL_SCRIPT" ]; then export VEID; exec "$EXTERNAL_SCRIPT" $@; fi', 'vznetcfg', ...args]);
  // Without the "# Generated ... on <date>" lines, which differ from one second to the next.
  const save = async () => (await lab.inDom0(`iptables-${variant}-save`, '-t', 'filter')).stdout.split('\n').filter((line) => !line.startsWith('#')).join('\n');

  beforeAll(async () => {
    await lab.create();
    for (const dir of ['stage/etc/vz/conf', 'stage/etc/vif-guard', 'stage/opt/vz-test', 'log', 'run', 'usr-local-sbin']) mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(stage('etc/vz/vz.conf'), '## Global parameters\nVIRTUOZZO=yes\nIPTABLES="ipt_REJECT ipt_tos ipt_limit ipt_multiport iptable_filter iptable_mangle"\n');
    for (const ctid of [101, 102]) {
      writeFileSync(stage(`etc/vz/conf/${ctid}.conf`), `ONBOOT="yes"\nIPTABLES="ip_tables iptable_filter ip_conntrack ipt_state ipt_recent "\nNETIF="ifname=eth0,bridge=vmbr0,mac=${mac(ctid).toUpperCase()},host_ifname=veth${ctid}.0,host_mac=FE:FF:FF:FF:FF:FF"\n`);
    }
    writeFileSync(stage('etc/vz/conf/103.conf'), 'NETIF="ifname=eth0,mac=00:18:51:00:01:03;garbage"\n');
    writeFileSync(stage('etc/vz/conf/104.conf'), 'IPTABLES="ipt_state xt_recent"\n');
    // The admin's bridge script, which vif-guard must keep running after its own.
    writeFileSync(stage('opt/vz-test/vznetaddbr'), '#!/bin/sh\n[ "$1" = init ] || exit 0\nip link set "$3" master vmbr0\nip link set "$3" up\n');
    chmodSync(stage('opt/vz-test/vznetaddbr'), 0o755);
    writeFileSync(stage('etc/vz/vznet.conf'), 'EXTERNAL_SCRIPT="/opt/vz-test/vznetaddbr"\n');
    writeFileSync(join(root, 'usr-local-sbin/modprobe'), `#!/bin/sh\necho "modprobe $*" >> ${log}\n`);
    chmodSync(join(root, 'usr-local-sbin/modprobe'), 0o755);
    writeFileSync(log, '');
    const install = await $({ env: { ...process.env, DESTDIR: join(root, 'stage') } })`./install.sh --prefix /opt/vif-guard --no-deps`.nothrow();
    if (install.exitCode !== 0) throw new Error(`install.sh failed: ${install.stdout}${install.stderr}`);
    writeFileSync(stage('etc/vif-guard/vif-guard.conf'), `[general]\nbackend = ${variant}\n`);
    writeFileSync(stage('etc/vif-guard/containers.conf'), `[101]\neth0 = ${subnet}.101\n[102]\neth0 = ${subnet}.102\n`);
    for (const ctid of [101, 102]) {
      const ct = await lab.addGuest(`ct${ctid}`, `veth${ctid}.0`, ctid);
      await lab.inNs(ct.ns, 'ip', 'link', 'set', 'eth0', 'address', mac(ctid));
    }
  }, 180_000);

  afterAll(async () => {
    await lab.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  it('install.sh chained to the admin\'s EXTERNAL_SCRIPT', () => {
    expect(readFileSync(stage('etc/vz/vznet.conf'), 'utf8')).toContain('EXTERNAL_SCRIPT="/opt/vif-guard/lib/vif-guard/bin/vznet-hook"');
    expect(readFileSync(stage('opt/vif-guard/lib/vif-guard/bin/vznet-hook'), 'utf8')).toContain('exec "/opt/vz-test/vznetaddbr" "$@"');
  });

  it('vps.mount, run as vzctl runs it, loads the container\'s host modules and protects its veths before they are bridged', async () => {
    for (const ctid of [101, 102]) {
      const result = await vpsMount(ctid);
      expect(result.exitCode, result.stderr).toBe(0);
    }
    expect(readFileSync(log, 'utf8')).toContain('modprobe xt_recent');
    expect(readFileSync(log, 'utf8')).toContain('modprobe xt_state');
    const filter = await save();
    expect(filter).toContain(`-A vif-guard-i-veth101.0 -s ${subnet}.101/32 -j RETURN`);
    expect(filter).toContain('guest=ct101');
  }, 60_000);

  it('vznetcfg runs vif-guard, then the admin\'s script, which bridges the veth', async () => {
    for (const ctid of [101, 102]) {
      const result = await vznetcfg(ctid, 'init', 'veth', `veth${ctid}.0`);
      expect(result.exitCode, result.stderr).toBe(0);
    }
    const links = (await lab.inDom0('ip', '-br', 'link', 'show', 'master', 'vmbr0')).stdout;
    expect(links).toContain('veth101.0');
    expect(links).toContain('veth102.0');
  }, 60_000);

  it('a container sends from its own address only', async () => {
    const ct101 = lab.guest('ct101');
    const ct102 = lab.guest('ct102');
    const done = await listen(lab, ct102.ns, [5000], 2.5);
    // The containers' MACs are the ones in their NETIF lines.
    const to102 = mac(102);
    await sendFrame(lab, { from: ct101, dstMac: to102, src: ct101.address, dst: ct102.address, sport: 4000, dport: 5000, token: 'ct-own' });
    await sendFrame(lab, { from: ct101, dstMac: to102, src: `${subnet}.66`, dst: ct102.address, sport: 4000, dport: 5000, token: 'ct-spoofed' });
    await sendFrame(lab, { from: ct101, dstMac: to102, src: ct102.address, dst: ct102.address, sport: 4000, dport: 5000, token: 'ct-steals-neighbour' });
    expect((await done()).map((d) => d.token)).toEqual(['ct-own', 'ct-own']);
  }, 60_000);

  it.each([
    [103, /vps.mount failed for container 103: Expected `NETIF` to be key=value fields separated by commas, got `garbage` \(\/etc\/vz\/conf\/103.conf line 1\)/],
    [104, /vps.mount failed for container 104: Expected `IPTABLES` to be vzctl module names .*got `xt_recent` \(\/etc\/vz\/conf\/104.conf line 1\)/],
  ])('a bad container config (CT %i) fails the mount with a clear error and changes nothing', async (ctid, message) => {
    const before = await save();
    const result = await vpsMount(ctid);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(message);
    expect(await save()).toBe(before);
  }, 60_000);

  it('a VEID that is not a number fails', async () => {
    const result = await onNode({ VEID: '101; reboot', VE_CONFFILE: '/etc/vz/conf/101.conf' }, ['/etc/vz/conf/vps.mount']);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('Expected `CTID` to be a container number such as 101, got `101; reboot`');
  }, 60_000);

  it('a malformed vif-guard.conf fails both hooks with one line naming the file and value, and changes nothing', async () => {
    const conf = stage('etc/vif-guard/vif-guard.conf');
    const good = readFileSync(conf, 'utf8');
    const before = await save();
    writeFileSync(conf, '[general]\nbackend = iptables-legacyy\n');
    try {
      for (const result of [await vpsMount(101), await vznetcfg(101, 'init', 'veth', 'veth101.0')]) {
        expect(result.exitCode).not.toBe(0);
        // Not a crash: no stack trace, no line of the bundle's source.
        expect(result.stderr.trim().split('\n')).toEqual([
          expect.stringMatching(/^vif-guard: (vps\.mount|veth hook) failed for container 101: \/etc\/vif-guard\/vif-guard\.conf: `backend` must be auto, nftables, iptables, iptables-nft or iptables-legacy, got `iptables-legacyy`$/),
        ]);
      }
    } finally {
      writeFileSync(conf, good);
    }
    expect(await save()).toBe(before);
  }, 60_000);

  it('sync covers running containers: rules lost to a flush come back', async () => {
    const bin = resolve('test/fixtures/openvz-bin');
    mkdirSync(join(root, 'vzstate/running'), { recursive: true });
    for (const ctid of ['101', '102']) writeFileSync(join(root, 'vzstate/running', ctid), '');
    const before = (await save()).split('\n').filter((line) => line.includes('veth10')).sort();
    await lab.inDom0(`iptables-${variant}`, '-F', 'vif-guard-i-veth101.0');
    const result = await onNode({ VIF_GUARD_BIN_DIR: bin, VZ_STATE: join(root, 'vzstate'), VZ_LOG: log }, ['/opt/vif-guard/sbin/vif-guard', 'sync', '--json']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).updated).toEqual(['veth101.0']);
    expect((await save()).split('\n').filter((line) => line.includes('veth10')).sort()).toEqual(before);
  }, 60_000);
});
