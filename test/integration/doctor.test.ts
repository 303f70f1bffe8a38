import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { CAN_USE_NETNS, VARIANTS } from '../helpers/env.js';
import { Dom0Lab } from '../helpers/netns.js';
import { FakeXenHost } from '../helpers/xen.js';

interface Report {
  status: number;
  checks: { id: string; level: string; message: string; fix?: string }[];
}

describe.skipIf(!CAN_USE_NETNS).each(VARIANTS)('doctor on iptables-%s', (variant) => {
  const subnet = variant === 'nft' ? '10.80.1' : '10.80.2';
  const lab = new Dom0Lab(subnet);
  let xen: FakeXenHost;

  async function doctor(): Promise<Report> {
    const result = await xen.cliMounted(['doctor', '--json']);
    const report = JSON.parse(result.stdout) as Report;
    expect(result.exitCode).toBe(report.status);
    return report;
  }
  const problems = (report: Report) => report.checks.filter((check) => check.level !== 'ok').map((check) => [check.id, check.level]);
  const find = (report: Report, id: string) => report.checks.find((check) => check.id === id);

  beforeAll(async () => {
    await lab.create();
    xen = new FakeXenHost(lab, variant);
    await xen.setup();
    // Any stateful rule turns conntrack on in the namespace, as on a real host.
    await lab.inDom0(`iptables-${variant}`, '-A', 'OUTPUT', '-o', 'lo', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP');
    await lab.addGuest('web', 'vif1.0', 11);
    xen.defineVif(1, 0, 'web', { ip: `${subnet}.11`, bridge: 'xenbr0', mac: lab.guest('web').mac });
    expect((await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 1, 0)).exitCode).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await lab.destroy();
    xen?.cleanup();
  });

  it('a healthy installation: exit 0, every check ok', async () => {
    const report = await doctor();
    expect(problems(report)).toEqual([]);
    expect(report.status).toBe(0);
    expect(report.checks.map((check) => check.id)).toEqual(expect.arrayContaining(['br_netfilter', 'bridge-nf-call-iptables', 'physdev', 'multiport', 'both-backends', 'conntrack', 'notrack', 'hooks', 'xl.conf', 'unaddressed', 'drift']));
  }, 60_000);

  it('bridge-nf-call-iptables off is an error with its fix', async () => {
    await lab.inDom0('sh', '-c', 'echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables');
    try {
      const report = await doctor();
      expect(report.status).toBe(2);
      expect(find(report, 'bridge-nf-call-iptables')).toMatchObject({ level: 'error', fix: 'sysctl -w net.bridge.bridge-nf-call-iptables=1' });
    } finally {
      await lab.inDom0('sh', '-c', 'echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables');
    }
  }, 60_000);

  it('a later sysctl.d file that turns it off at boot is named', async () => {
    const file = xen.stagePath('etc/sysctl.d/99-zz-local.conf');
    writeFileSync(file, 'net.bridge.bridge-nf-call-iptables = 0\n');
    try {
      const report = await doctor();
      expect(find(report, 'persist:net.bridge.bridge-nf-call-iptables')).toMatchObject({
        level: 'warning',
        message: 'net.bridge.bridge-nf-call-iptables will be 0 after a reboot: /etc/sysctl.d/99-zz-local.conf sets it last',
      });
    } finally {
      rmSync(file);
    }
  }, 60_000);

  it('rules in the other iptables variant are a warning', async () => {
    const other = variant === 'nft' ? 'legacy' : 'nft';
    await lab.inDom0(`iptables-${other}`, '-A', 'FORWARD', '-s', '192.0.2.1', '-j', 'ACCEPT');
    try {
      expect(find(await doctor(), 'both-backends')).toMatchObject({ level: 'warning' });
    } finally {
      await lab.inDom0(`iptables-${other}`, '-D', 'FORWARD', '-s', '192.0.2.1', '-j', 'ACCEPT');
    }
  }, 60_000);

  it('a missing NOTRACK table and NOTRACK switched off are warnings', async () => {
    await lab.inDom0('nft', 'delete', 'table', 'bridge', 'vif_guard');
    expect(find(await doctor(), 'notrack')).toMatchObject({ level: 'warning', fix: 'vif-guard sync' });
    xen.writeConfig(`[general]\nbackend = ${variant}\nnotrack = no\n`);
    try {
      expect(find(await doctor(), 'notrack')).toMatchObject({ level: 'warning', message: 'notrack = no: switched guest traffic fills the conntrack table' });
    } finally {
      xen.writeConfig(`[general]\nbackend = ${variant}\n`);
      expect((await xen.cli(['sync'])).exitCode).toBe(0);
    }
  }, 60_000);

  it('a hook that is not executable is an error', async () => {
    const hook = xen.stagePath('etc/xen/scripts/vif-post.d/vif-guard.hook');
    chmodSync(hook, 0o644);
    try {
      expect(find(await doctor(), 'hooks')).toMatchObject({ level: 'error', fix: 'chmod +x /etc/xen/scripts/vif-post.d/vif-guard.hook' });
    } finally {
      chmodSync(hook, 0o755);
    }
  }, 60_000);

  it('an xl.conf default script that runs no hooks is a warning', async () => {
    const conf = xen.stagePath('etc/xen/xl.conf');
    writeFileSync(conf, 'vif.default.script="vif-openvswitch"\n');
    try {
      expect(find(await doctor(), 'xl.conf')).toMatchObject({ level: 'warning', message: expect.stringContaining('"vif-openvswitch" does not run vif-post.d hooks') });
    } finally {
      rmSync(conf);
    }
  }, 60_000);

  it('a running vif without addresses, and a vif whose rules were lost, are reported', async () => {
    await lab.addGuest('bare', 'vif2.0', 12);
    xen.defineVif(2, 0, 'bare', { bridge: 'xenbr0' });
    expect((await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 2, 0)).exitCode).toBe(0);
    await lab.inDom0(`iptables-${variant}`, '-F', 'vif-guard-in');
    const report = await doctor();
    expect(find(report, 'unaddressed')).toMatchObject({ level: 'warning', message: 'running vifs with no ip= configured are not protected: vif2.0 (bare)' });
    expect(find(report, 'drift')).toMatchObject({ level: 'warning', fix: 'vif-guard sync' });
    await lab.inDom0(`iptables-${variant}`, '-F', 'vif-guard-i-vif1.0');
    await lab.inDom0(`iptables-${variant}`, '-F', 'vif-guard-o-vif1.0');
    await lab.inDom0(`iptables-${variant}`, '-F', 'vif-guard-fwd');
    await lab.inDom0(`iptables-${variant}`, '-X', 'vif-guard-i-vif1.0');
    const lost = await doctor();
    expect(find(lost, 'drift')).toMatchObject({ level: 'error', message: 'running vifs without their rules: vif1.0' });
    expect(lost.status).toBe(2);
    expect((await xen.cli(['sync'])).exitCode).toBe(0);
    expect(find(await doctor(), 'drift')).toMatchObject({ level: 'ok' });
  }, 60_000);
});
