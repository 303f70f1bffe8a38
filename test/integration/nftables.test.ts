import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { $ } from 'zx';
import { CAN_USE_NETNS } from '../helpers/env.js';
import { Dom0Lab, listen, sendFrame, type Datagram, type Frame } from '../helpers/netns.js';
import { FakeXenHost, foreignLines } from '../helpers/xen.js';

// Someone else's rules in both iptables variants and in nft: the nftables backend must not touch any of them.
const FOREIGN = `*filter
:f2b-sshd - [0:0]
[7:700] -A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd
[3:300] -A f2b-sshd -s 198.51.100.7/32 -j REJECT --reject-with icmp-port-unreachable
[5:500] -A FORWARD -s 192.0.2.0/24 -j ACCEPT
COMMIT
`;
const FOREIGN_NFT = 'table inet admin {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 2222 counter packets 0 bytes 0 drop\n\t}\n}\n';

const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const tokens = (datagrams: Datagram[]) => new Set(datagrams.map((d) => d.token));
/** The table without what traffic changes (counters, log budgets' expiry, what the fast path learned). */
const stable = (table: string) =>
  table
    .replace(/ expires \S+/g, '')
    .replace(/packets \d+ bytes \d+/g, '')
    .replace(/(\tset (?:fast|dst)[46] \{[^}]*?)\t\telements = \{[^}]*\}\n/g, '$1');

describe.skipIf(!CAN_USE_NETNS)('nftables backend: Xen hooks, sync, blocklists', () => {
  const subnet = '10.77.9';
  const lab = new Dom0Lab(subnet);
  let xen: FakeXenHost;
  let dom0Mac = '';
  let foreignBefore: { nft: string[]; legacy: string[]; table: string };
  const BLOCKED = '198.18.7.9';

  /** Send frames with listeners on web and dom0; which tokens arrived where. */
  async function exchange(frames: Frame[]): Promise<{ web: Set<string>; dom0: Set<string>; uplink: Set<string> }> {
    const webDone = await listen(lab, lab.guest('web').ns, [5000, 68], 4.5);
    const dom0Done = await listen(lab, lab.dom0, [5000, 67, 68], 4.5);
    const uplinkDone = await listen(lab, lab.guest('uplink').ns, [5000], 4.5);
    for (const frame of frames) await sendFrame(lab, frame);
    return { web: tokens(await webDone()), dom0: tokens(await dom0Done()), uplink: tokens(await uplinkDone()) };
  }

  const matrix = (): Frame[] => {
    const [web, evil, uplink] = ['web', 'evil', 'uplink'].map((name) => lab.guest(name)) as [ReturnType<Dom0Lab['guest']>, ReturnType<Dom0Lab['guest']>, ReturnType<Dom0Lab['guest']>];
    return [
      { from: evil, dstMac: web.mac, src: evil.address, dst: web.address, sport: 4000, dport: 5000, token: 'own-to-neighbour' },
      { from: evil, dstMac: dom0Mac, src: evil.address, dst: lab.dom0Ip, sport: 4000, dport: 5000, token: 'own-to-dom0' },
      { from: evil, dstMac: web.mac, src: `${subnet}.66`, dst: web.address, sport: 4000, dport: 5000, token: 'spoof-to-neighbour' },
      { from: evil, dstMac: dom0Mac, src: web.address, dst: lab.dom0Ip, sport: 4000, dport: 5000, token: 'spoof-to-dom0' },
      { from: evil, dstMac: BROADCAST, src: '0.0.0.0', dst: '255.255.255.255', sport: 68, dport: 67, token: 'dhcp-discover' },
      { from: evil, dstMac: BROADCAST, src: evil.address, dst: '255.255.255.255', sport: 67, dport: 68, token: 'rogue-dhcp-offer' },
      // The uplink (the physical NIC in a real dom0) is not a guest: anything it sends is bridged on.
      { from: uplink, dstMac: web.mac, src: uplink.address, dst: web.address, sport: 4000, dport: 5000, token: 'internet-to-web' },
      { from: uplink, dstMac: web.mac, src: BLOCKED, dst: web.address, sport: 4000, dport: 5000, token: 'blocked-source-to-web' },
      { from: uplink, dstMac: lab.guest('evil').mac, src: BLOCKED, dst: lab.guest('evil').address, sport: 4000, dport: 5000, token: 'blocked-source-to-evil' },
      { from: web, dstMac: uplink.mac, src: web.address, dst: uplink.address, sport: 4000, dport: 5000, token: 'web-to-internet' },
    ];
  };

  beforeAll(async () => {
    await lab.create();
    dom0Mac = await lab.bridgeMac();
    await lab.addGuest('web', 'vif1.0', 11, true);
    await lab.addGuest('evil', 'vif2.0', 12, true);
    await lab.addGuest('uplink', 'eth9', 50, true);
    await lab.inNs(lab.guest('uplink').ns, 'ip', 'addr', 'add', `${BLOCKED}/32`, 'dev', 'eth0');
    // The nftables backend does not need br_netfilter: run with bridged frames kept out of iptables.
    await lab.inDom0('sh', '-c', 'echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables; echo 0 > /proc/sys/net/bridge/bridge-nf-call-ip6tables');
    xen = new FakeXenHost(lab, 'nftables');
    await xen.setup();
    for (const variant of ['nft', 'legacy']) {
      const file = join(xen.root, `foreign-${variant}`);
      writeFileSync(file, FOREIGN);
      await lab.inDom0('sh', '-c', `iptables-${variant}-restore --noflush --counters < ${file}`);
    }
    writeFileSync(join(xen.root, 'foreign.nft'), FOREIGN_NFT);
    await lab.inDom0('nft', '-f', join(xen.root, 'foreign.nft'));
    foreignBefore = {
      nft: foreignLines((await lab.inDom0('iptables-nft-save', '-c', '-t', 'filter')).stdout),
      legacy: foreignLines((await lab.inDom0('iptables-legacy-save', '-c', '-t', 'filter')).stdout),
      table: (await lab.inDom0('nft', 'list', 'table', 'inet', 'admin')).stdout,
    };
    xen.defineVif(1, 0, 'web', { ip: `${subnet}.11`, mac: lab.guest('web').mac, bridge: 'xenbr0' });
    xen.defineVif(2, 0, 'evil', { ip: `${subnet}.12`, mac: lab.guest('evil').mac, bridge: 'xenbr0' });
    for (const vif of ['vif1.0', 'vif2.0']) await lab.inDom0('ip', 'link', 'set', vif, 'nomaster', 'down');
  }, 180_000);

  afterAll(async () => {
    await lab.destroy();
    xen?.cleanup();
  });

  it('online through the stock vif-bridge: protected by set elements, nothing written to iptables', async () => {
    for (const domid of [1, 2]) {
      const result = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], domid, 0);
      expect(result.exitCode, xen.hotplugLog()).toBe(0);
      expect(xen.xsRead(`backend/vif/${domid}/0/hotplug-status`)).toBe('connected');
    }
    const table = await xen.bridgeTable();
    expect(table).toContain(`"vif1.0" . ${subnet}.11`);
    expect(table).toMatch(/"vif2.0" comment "g=evil b=xenbr0 m=\S+ k=xen:2\/0 bl=- a=10.77.9.12\/32"/);
    expect(xen.hotplugLog()).toMatch(/vif-guard: vif1.0 \(guest web, bridge xenbr0, 10.77.9.11\/32\) protected \(nftables/);
    expect((await lab.inDom0('iptables-nft-save')).stdout).not.toContain('vif-guard');
    expect((await lab.inDom0('iptables-legacy-save')).stdout).not.toContain('vif-guard');
    // The hook did not turn bridged frames into iptables traffic: the nftables backend does not need it.
    expect((await lab.inDom0('cat', '/proc/sys/net/bridge/bridge-nf-call-iptables')).stdout.trim()).toBe('0');
  }, 60_000);

  it('spoofed sources and rogue DHCP are dropped; own traffic, DHCP requests and the uplink pass', async () => {
    const arrived = await exchange(matrix());
    expect(arrived.web).toEqual(new Set(['own-to-neighbour', 'internet-to-web', 'blocked-source-to-web']));
    expect(arrived.dom0).toEqual(new Set(['own-to-dom0', 'dhcp-discover']));
    expect(arrived.uplink).toEqual(new Set(['web-to-internet']));
  }, 60_000);

  it('the fast path learns only what the full checks accepted, and forgets it all when a port goes', async () => {
    const [web, evil] = [lab.guest('web'), lab.guest('evil')];
    const learned = async () => {
      const sets: Record<string, string[]> = {};
      for (const set of ['fast4', 'dst4']) {
        const json = JSON.parse((await lab.inDom0('nft', '-j', 'list', 'set', 'bridge', 'vif_guard', set)).stdout) as { nftables: { set?: { elem?: { concat: unknown[] }[] } }[] };
        // nft prints an interface index by the name it has now.
        sets[set] = (json.nftables.find((item) => item.set)?.set?.elem ?? []).map((elem) => elem.concat.join(' ')).sort();
      }
      return sets;
    };
    // The previous test's frames: each guest's own traffic, nothing spoofed, no DHCP offer, no 0.0.0.0.
    const taught = { fast4: [`vif1.0 ${web.mac} ${web.address}`, `vif2.0 ${evil.mac} ${evil.address}`], dst4: [`vif1.0 ${web.address}`, `vif2.0 ${evil.address}`] };
    expect(await learned()).toEqual(taught);
    // A guest's shutdown flushes what was learned, in the same transaction (nothing learned can outlive a change).
    expect((await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 2, 0)).exitCode, xen.hotplugLog()).toBe(0);
    expect(await learned()).toEqual({ fast4: [], dst4: [] });
    expect((await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 2, 0)).exitCode, xen.hotplugLog()).toBe(0);
    // Learned again, twice over (the second round takes the fast path), and a spoof still meets the port.
    for (let round = 0; round < 2; round += 1) {
      const arrived = await exchange(matrix());
      expect(arrived.web).toEqual(new Set(['own-to-neighbour', 'internet-to-web', 'blocked-source-to-web']));
      expect(arrived.dom0).toEqual(new Set(['own-to-dom0', 'dhcp-discover']));
    }
    expect(await learned()).toEqual(taught);
  }, 60_000);

  it('a malformed zone file is refused with its line numbers and changes nothing', async () => {
    const zone = join(xen.root, 'bad.zone');
    writeFileSync(zone, '# country zone\n198.18.0.0/15\n10.0.0.0/33\n\nnot-a-prefix\n203.0.113.0/24 ; ok\n1.2.3.4 -j ACCEPT\n');
    const before = stable(await xen.bridgeTable());
    const result = await xen.cli(['block', 'web', '--zone', zone]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${zone}: 3 malformed line(s), nothing applied: line 3: \`10.0.0.0/33\`, line 5: \`not-a-prefix\`, line 7: \`1.2.3.4 -j ACCEPT\``);
    expect(result.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(stable(await xen.bridgeTable())).toBe(before);
    expect((await xen.cli(['block', '--list', '--json'])).stdout.trim()).toBe('[]');
  }, 60_000);

  it('block: a zone of 8,600 prefixes drops its sources to that guest only, in one transaction', async () => {
    const zone = join(xen.root, 'cn.zone');
    // 8,599 disjoint /24s outside the lab, plus the prefix the uplink's second address is in.
    const lines = Array.from({ length: 8599 }, (_, i) => `100.${64 + (i >> 8)}.${i & 255}.0/24`);
    writeFileSync(zone, `# generated\n${lines.join('\n')}\n198.18.0.0/15\n`);
    const result = await xen.cli(['block', 'web', '--zone', zone, '--json']);
    expect(result.exitCode, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as { prefixes: number; ports: string[]; name: string };
    expect(summary).toMatchObject({ prefixes: 8600, ports: ['vif1.0'], name: 'cn' });
    const arrived = await exchange(matrix());
    expect(arrived.web).toEqual(new Set(['own-to-neighbour', 'internet-to-web']));
    expect(arrived.uplink).toEqual(new Set(['web-to-internet']));
    const status = JSON.parse((await xen.cli(['status', '--json'])).stdout) as { ports: { vif: string; state: string }[] };
    expect(status.ports.map((port) => [port.vif, port.state])).toEqual([['vif1.0', 'protected'], ['vif2.0', 'protected']]);
  }, 60_000);

  it('--both also drops what the guest sends to them; replacing a list is one atomic swap', async () => {
    const result = await xen.cli(['block', 'web', '--cidr', `${lab.guest('uplink').address}/32`, '--name', 'uplink', '--both']);
    expect(result.exitCode, result.stderr).toBe(0);
    let arrived = await exchange(matrix());
    expect(arrived.web).toEqual(new Set(['own-to-neighbour']));
    expect(arrived.uplink).toEqual(new Set());
    const again = await xen.cli(['block', 'web', '--cidr', '192.0.2.0/24', '--name', 'uplink', '--both', '--dry-run']);
    expect(again.exitCode, again.stderr).toBe(0);
    // A new list is new sets; the old ones go whole (emptying one element by element is slow).
    expect(again.stderr).toMatch(/add element bridge vif_guard bl_out4_vif1_d0_[0-9a-f]{12} \{ 192\.0\.2\.0\/24 \. 0-255 \}\n/);
    expect(again.stderr).toMatch(/delete set bridge vif_guard bl_out4_vif1_d0_[0-9a-f]{12}\n/);
    arrived = await exchange(matrix());
    expect(arrived.uplink).toEqual(new Set());
    // Replaced for real (same prefix, a new list): one set per list and direction is left, and it still drops.
    const replaced = await xen.cli(['block', 'web', '--cidr', `${lab.guest('uplink').address}/32`, '--name', 'uplink', '--both']);
    expect(replaced.exitCode, replaced.stderr).toBe(0);
    expect((await xen.bridgeTable()).match(/set bl_out4_vif1_d0_[0-9a-f]+ \{/g)).toHaveLength(1);
    arrived = await exchange(matrix());
    expect(arrived.uplink).toEqual(new Set());
    // The guest starts again: its hook finds the lists saved under its guest name and puts them back.
    expect((await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 1, 0)).exitCode, xen.hotplugLog()).toBe(0);
    expect((await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 1, 0)).exitCode, xen.hotplugLog()).toBe(0);
    arrived = await exchange(matrix());
    expect(arrived.web).toEqual(new Set(['own-to-neighbour']));
    expect(arrived.uplink).toEqual(new Set());
  }, 60_000);

  it('sync restores blocklists and protection after the bridge table is deleted', async () => {
    await lab.inDom0('nft', 'delete', 'table', 'bridge', 'vif_guard');
    const sync = await xen.cli(['sync']);
    expect(sync.exitCode, sync.stderr).toBe(0);
    const arrived = await exchange(matrix());
    expect(arrived.web).toEqual(new Set(['own-to-neighbour']));
    expect(arrived.dom0).toEqual(new Set(['own-to-dom0', 'dhcp-discover']));
    expect((await xen.cli(['sync'])).stderr).toContain('nothing to do');
  }, 60_000);

  it('sync repairs elements changed by hand: a guest given a neighbour\'s address, its own removed', async () => {
    const [web, evil] = [lab.guest('web'), lab.guest('evil')];
    const v4 = async () => (await lab.inDom0('nft', 'list', 'set', 'bridge', 'vif_guard', 'v4')).stdout;
    const before = await v4();
    await lab.inDom0('nft', 'delete', 'element', 'bridge', 'vif_guard', 'v4', `{ "${evil.vif}" . ${evil.address} }`);
    await lab.inDom0('nft', 'add', 'element', 'bridge', 'vif_guard', 'v4', `{ "${evil.vif}" . ${web.address} }`);
    const sync = await xen.cli(['sync']);
    expect(sync.exitCode, sync.stderr).toBe(0);
    expect(sync.stderr).not.toContain('nothing to do');
    expect(await v4()).toBe(before);
    const arrived = await exchange(matrix());
    expect(arrived.dom0).toEqual(new Set(['own-to-dom0', 'dhcp-discover']));
    expect((await xen.cli(['sync'])).stderr).toContain('nothing to do');
  }, 60_000);

  it('a sync with nothing to do answers from its memo next time; a hand edit, a changed guest or a spoilt memo is checked and repaired again', async () => {
    const evil = lab.guest('evil');
    const memo = join(xen.root, 'run', 'vif-guard-sync.memo');
    const sync = async () => {
      const result = await xen.cli(['sync', '--json']);
      expect(result.exitCode, result.stderr).toBe(0);
      return JSON.parse(result.stdout) as { unchanged: boolean; updated: string[]; protectedPorts: number };
    };
    // The previous test ended with a sync that found nothing to do: it kept the memo.
    expect(existsSync(memo)).toBe(true);
    expect(await sync()).toMatchObject({ unchanged: true, updated: [] });
    // The kernel's sets are part of the key: an element removed by hand is a miss, and repaired.
    await lab.inDom0('nft', 'delete', 'element', 'bridge', 'vif_guard', 'v4', `{ "${evil.vif}" . ${evil.address} }`);
    expect(await sync()).toMatchObject({ unchanged: false, updated: [evil.vif] });
    expect((await lab.inDom0('nft', 'list', 'set', 'bridge', 'vif_guard', 'v4')).stdout).toContain(evil.address);
    expect(await sync()).toMatchObject({ unchanged: false, updated: [] });
    expect(await sync()).toMatchObject({ unchanged: true });
    // So is every input: the guest's address in xenstore changed, then back.
    xen.defineVif(2, 0, 'evil', { ip: `${subnet}.99`, mac: evil.mac, bridge: 'xenbr0' });
    expect(await sync()).toMatchObject({ unchanged: false, updated: [evil.vif] });
    xen.defineVif(2, 0, 'evil', { ip: `${subnet}.12`, mac: evil.mac, bridge: 'xenbr0' });
    expect(await sync()).toMatchObject({ unchanged: false, updated: [evil.vif] });
    expect(await sync()).toMatchObject({ unchanged: false, updated: [] });
    // A memo that does not parse, or names another state, is only a miss.
    writeFileSync(memo, 'not json');
    expect(await sync()).toMatchObject({ unchanged: false, updated: [] });
    writeFileSync(memo, `${JSON.stringify({ ...JSON.parse(readFileSync(memo, 'utf8')), listing: '0'.repeat(64) })}\n`);
    expect(await sync()).toMatchObject({ unchanged: false, updated: [] });
    expect(await sync()).toMatchObject({ unchanged: true, protectedPorts: 2 });
    const arrived = await exchange(matrix());
    expect(arrived.dom0).toEqual(new Set(['own-to-dom0', 'dhcp-discover']));
  }, 90_000);

  it('a rule edited or a set left behind inside the bridge table: doctor names it, sync does not see it, sync --rebuild writes the table again', async () => {
    type Check = { id: string; level: string; message: string; fix?: string };
    const doctor = async () => (JSON.parse((await xen.cli(['doctor', '--json'])).stdout) as { checks: Check[] }).checks;
    const chainsCheck = async () => (await doctor()).find((check) => check.id === 'bridge-chains');
    expect(await chainsCheck()).toMatchObject({ level: 'ok' });
    // A blocklist's sets left behind (as when its port's record lost the list's digest): doctor names them.
    await lab.inDom0('nft', 'add', 'set', 'bridge', 'vif_guard', 'bl_in4_vif1_d0_0ff', '{ type ipv4_addr . inet_proto; flags interval; }');
    const stray = (await doctor()).find((check) => check.id === 'bridge-sets');
    expect(stray).toMatchObject({ level: 'warning', fix: 'vif-guard sync --rebuild' });
    expect(stray?.message).toContain('1 set that no port uses (1 of a blocklist no port has any more)');
    expect(stray?.message).toContain('bl_in4_vif1_d0_0ff');
    // An accept on top of the IPv4 checks: spoofed sources from any guest reach dom0 again.
    await lab.inDom0('nft', 'insert', 'rule', 'bridge', 'vif_guard', 'from_ip4', 'accept');
    expect((await exchange(matrix())).dom0).toContain('spoof-to-dom0');
    const check = await chainsCheck();
    expect(check).toMatchObject({ level: 'error', fix: 'vif-guard sync --rebuild' });
    expect(check?.message).toContain('chain from_ip4 has 9 rules where vif-guard wrote 8, the first difference at rule 1 (accept instead of -)');
    // What sync reads (the sets) is as it should be: the known limit.
    expect((await xen.cli(['sync'])).stderr).toContain('nothing to do');
    const dry = await xen.cli(['sync', '--rebuild', '--dry-run']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stderr).toContain('would rebuild the bridge table vif_guard whole');
    expect((await chainsCheck())?.level).toBe('error');
    const rebuilt = await xen.cli(['sync', '--rebuild', '--json']);
    expect(rebuilt.exitCode, rebuilt.stderr).toBe(0);
    expect(JSON.parse(rebuilt.stdout)).toMatchObject({ rebuilt: true, added: [], released: [], protectedPorts: 2 });
    const after = await doctor();
    expect(after.find((check) => check.id === 'bridge-chains')).toMatchObject({ level: 'ok' });
    expect(after.find((check) => check.id === 'bridge-sets')).toMatchObject({ level: 'ok' });
    expect(await xen.bridgeTable()).not.toContain('bl_in4_vif1_d0_0ff');
    const arrived = await exchange(matrix());
    expect(arrived.dom0).toEqual(new Set(['own-to-dom0', 'dhcp-discover']));
    // web's blocklists came back with the table (their chains are among those doctor checked).
    expect(arrived.web).toEqual(new Set(['own-to-neighbour']));
    expect(arrived.uplink).toEqual(new Set());
    expect((await xen.cli(['sync'])).stderr).toContain('nothing to do');
  }, 90_000);

  it('unblock removes one list, then all; block --list shows what is saved', async () => {
    const list = JSON.parse((await xen.cli(['block', '--list', '--json'])).stdout) as { name: string; prefixes: number; ports: string[] }[];
    expect(list.map((entry) => [entry.name, entry.prefixes, entry.ports])).toEqual([['cn', 8600, ['vif1.0']], ['uplink', 1, ['vif1.0']]]);
    expect((await xen.cli(['unblock', 'web', '--name', 'uplink'])).exitCode).toBe(0);
    let arrived = await exchange(matrix());
    expect(arrived.web).toEqual(new Set(['own-to-neighbour', 'internet-to-web']));
    expect((await xen.cli(['unblock', 'web'])).exitCode).toBe(0);
    arrived = await exchange(matrix());
    expect(arrived.web).toEqual(new Set(['own-to-neighbour', 'internet-to-web', 'blocked-source-to-web']));
    expect(await xen.bridgeTable()).not.toContain('bl_in4_');
  }, 60_000);

  it('a list that cannot be saved is not left applied: the command fails and the table is as before', async () => {
    // A state directory (as saved now: no lists) whose blocklists directory takes no new file, even from root.
    const state = join(xen.root, 'state-unwritable');
    mkdirSync(state, { recursive: true });
    symlinkSync('/proc/self/fdinfo', join(state, 'blocklists'));
    const before = stable(await xen.bridgeTable());
    const result = await xen.cli(['block', 'web', '--cidr', `${lab.guest('uplink').address}/32`], { VIF_GUARD_STATE_DIR: state });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain(`cannot save ${join(state, 'blocklists', 'web.json')}`);
    expect(result.stderr).toContain('the blocklist was not applied');
    expect(stable(await xen.bridgeTable())).toBe(before);
    const arrived = await exchange(matrix());
    expect(arrived.web).toEqual(new Set(['own-to-neighbour', 'internet-to-web', 'blocked-source-to-web']));
  }, 60_000);

  it('two blocks for two guests at once both hold: each reads the saved lists under the lock', async () => {
    // Both commands start while the lock is held, so both are past their start when they get it in turn.
    // Before, each read the saved lists at its start, and the second to commit undid the first's list.
    const holder = $`flock -x ${join(xen.root, 'run', 'vif-guard.lock')} sleep 3`;
    await new Promise((resolve) => setTimeout(resolve, 300));
    const both = [xen.cli(['block', 'web', '--cidr', `${BLOCKED}/32`, '--name', 'a']), xen.cli(['block', 'evil', '--cidr', `${BLOCKED}/32`, '--name', 'b'])];
    await holder;
    for (const result of await Promise.all(both)) expect(result.exitCode, result.stderr).toBe(0);
    const arrived = await exchange(matrix());
    expect(arrived.web).toEqual(new Set(['own-to-neighbour', 'internet-to-web']));
    // evil's list is in the kernel too: its port is in the blocklist maps.
    const table = await xen.bridgeTable();
    for (const vif of ['vif1.0', 'vif2.0']) expect(table).toContain(`"${vif}" : jump bli_${vif.replace('.', '_d')}`);
    const list = JSON.parse((await xen.cli(['block', '--list', '--json'])).stdout) as { target: string; name: string }[];
    expect(list.map((entry) => `${entry.target}/${entry.name}`).sort()).toEqual(['evil/b', 'web/a']);
    for (const target of ['web', 'evil']) expect((await xen.cli(['unblock', target])).exitCode).toBe(0);
  }, 60_000);

  it('offline removes exactly that vif; a second offline succeeds', async () => {
    expect((await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 2, 0)).exitCode).toBe(0);
    const table = await xen.bridgeTable();
    expect(table).not.toContain('vif2.0');
    expect(table).toContain('"vif1.0" . ');
    expect((await xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], 2, 0)).exitCode).toBe(0);
  }, 60_000);

  it('switching from the iptables backend carries every port over and removes the iptables chains', async () => {
    xen.writeConfig('[general]\nbackend = nft\n');
    expect((await xen.cli(['sync'])).exitCode).toBe(0);
    expect((await lab.inDom0('iptables-nft-save')).stdout).toContain(':vif-guard-i-vif1.0');
    xen.writeConfig('[general]\nbackend = nftables\n');
    // One hook for another vif: the bridge table now holds vif1.0 too, and iptables is clean.
    xen.defineVif(3, 0, 'db', { ip: `${subnet}.13`, mac: '00:16:3e:00:09:13', bridge: 'xenbr0' });
    await lab.inDom0('ip', 'link', 'add', 'vif3.0', 'type', 'veth', 'peer', 'name', 'vif3p');
    const up = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 3, 0);
    expect(up.exitCode, xen.hotplugLog()).toBe(0);
    const table = await xen.bridgeTable();
    expect(table).toContain(`"vif1.0" . ${subnet}.11`);
    expect(table).toContain(`"vif3.0" . ${subnet}.13`);
    expect((await lab.inDom0('iptables-nft-save')).stdout).not.toContain('vif-guard');
  }, 60_000);

  it('auto on a kernel that cannot load the table (nft -c refuses it): hooks protect with iptables and layer 2 with ebtables, doctor says why', async () => {
    const fake = mkdtempSync(join(tmpdir(), 'vif-guard-oldkernel-'));
    // What an older kernel with nf_tables answers for the table's concatenated interval sets.
    writeFileSync(join(fake, 'nft'), '#!/bin/sh\nif [ "$1" = "-c" ]; then cat >/dev/null; echo "Error: Could not process rule: Operation not supported" >&2; exit 1; fi\nexec /usr/sbin/nft "$@"\n');
    chmodSync(join(fake, 'nft'), 0o755);
    // ebtables-nft whatever the host's alternative (this kernel has no legacy ebtables tables).
    xen.useEbtablesNft();
    for (const tool of ['ebtables', 'ebtables-restore']) symlinkSync('/usr/sbin/xtables-nft-multi', join(fake, tool));
    xen.writeConfig('[general]\nbackend = auto\n');
    // Such a kernel never ran the nftables backend, so this boot has no cache of its commits.
    await xen.inMountNs(['rm', '-f', '/run/vif-guard-ports.cache']);
    try {
      xen.defineVif(4, 0, 'old', { ip: `${subnet}.14`, mac: '00:16:3e:00:09:14', bridge: 'xenbr0' });
      await lab.inDom0('ip', 'link', 'add', 'vif4.0', 'type', 'veth', 'peer', 'name', 'vif4p');
      const up = await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], 4, 0, { VIF_GUARD_BIN_DIR: fake });
      expect(up.exitCode, xen.hotplugLog()).toBe(0);
      expect(xen.hotplugLog()).toMatch(/vif4\.0 .* protected \(iptables-/);
      const save = (await lab.inDom0('iptables-nft-save')).stdout;
      // Every port moved to iptables, the new one and those the bridge table held.
      for (const vif of ['vif1.0', 'vif3.0', 'vif4.0']) expect(save).toContain(`:vif-guard-i-${vif}`);
      // And MAC, ARP and ethertypes to ebtables, since the bridge table cannot load either.
      const eb = (await lab.inDom0('ebtables-nft', '-t', 'nat', '-L')).stdout;
      for (const vif of ['vif1.0', 'vif3.0', 'vif4.0']) expect(eb).toMatch(new RegExp(`Bridge chain: vgl2-p-${vif.replace('.', '\\.')}-[0-9a-f]{6},`));
      expect(await xen.bridgeTable()).toBe('');
      const doctor = JSON.parse((await xen.cliMounted(['doctor', '--json'], { VIF_GUARD_BIN_DIR: fake })).stdout) as { checks: { id: string; message: string }[] };
      expect(doctor.checks.find((check) => check.id === 'backend')?.message).toMatch(/^backend: iptables .*auto did not pick nftables: this kernel cannot load the nftables backend's table \(Error: Could not process rule: Operation not supported\)/);
      // Forcing the nftables backend on such a kernel is an error doctor names, with its fix.
      xen.writeConfig('[general]\nbackend = nftables\n');
      const forced = JSON.parse((await xen.cliMounted(['doctor', '--json'], { VIF_GUARD_BIN_DIR: fake })).stdout) as { checks: { id: string; level: string; message: string; fix?: string }[] };
      expect(forced.checks.find((check) => check.id === 'backend')).toMatchObject({ level: 'error', message: expect.stringMatching(/^backend = nftables, but this kernel cannot load/), fix: expect.stringContaining('backend = auto') });
    } finally {
      rmSync(fake, { recursive: true, force: true });
      await xen.inMountNs(['rm', '-f', '/run/vif-guard-nftables.probe']);
      xen.writeConfig('[general]\nbackend = nftables\n');
    }
    // Back on a kernel that can: sync moves everything to the bridge table again.
    expect((await xen.cli(['sync'])).exitCode).toBe(0);
    expect((await lab.inDom0('iptables-nft-save')).stdout).not.toContain('vif-guard');
    expect(await xen.bridgeTable()).toContain(`"vif4.0" . ${subnet}.14`);
    expect((await lab.inDom0('ebtables-nft', '-t', 'nat', '-L')).stdout).not.toMatch(/vgl2-|vif-guard-l2/);
  }, 90_000);

  it('left every foreign rule, counter and nft table as it was', async () => {
    expect(foreignLines((await lab.inDom0('iptables-nft-save', '-c', '-t', 'filter')).stdout)).toEqual(foreignBefore.nft);
    expect(foreignLines((await lab.inDom0('iptables-legacy-save', '-c', '-t', 'filter')).stdout)).toEqual(foreignBefore.legacy);
    expect((await lab.inDom0('nft', 'list', 'table', 'inet', 'admin')).stdout).toBe(foreignBefore.table);
  }, 60_000);
});
