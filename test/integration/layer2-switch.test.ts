import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAN_USE_NETNS, VARIANTS } from '../helpers/env.js';
import { Dom0Lab } from '../helpers/netns.js';
import { FakeXenHost } from '../helpers/xen.js';
import { ebtablesCurrent, parseEbtablesList } from '../../lib/backend/ebtables.js';
import { buildEbtables } from '../../lib/rules/ebtables.js';
import { layer2Port } from '../../lib/rules/bridge.js';
import { DEFAULT_SETTINGS } from '../../lib/config/settings.js';
import { parseAddressList } from '../../lib/guest/validate.js';
import type { GuestPort } from '../../lib/guest/model.js';

const GUESTS = 12;

// Layer 2 in ebtables under load and across tool changes: concurrent hooks (the cached path plans each
// from the port names alone) must leave exactly what a full plan would, and sync must move every port
// between nft's bridge family, ebtables and nothing without leaving anything behind.
describe.skipIf(!CAN_USE_NETNS).each(VARIANTS)('layer 2 in ebtables on iptables-%s: concurrent hooks and switching tools', (variant) => {
  const subnet = variant === 'nft' ? '10.83.1' : '10.83.2';
  const lab = new Dom0Lab(subnet);
  let xen: FakeXenHost;
  const domids = Array.from({ length: GUESTS }, (_, i) => i + 1);
  const ports: GuestPort[] = [];

  const config = (extra: string) => xen.writeConfig(`[general]\nbackend = ${variant}\n${extra}`);
  const ebtables = async () => parseEbtablesList((await lab.inDom0('ebtables-nft', '-t', 'nat', '-L')).stdout);
  const exact = async () => ebtablesCurrent(await ebtables(), buildEbtables(ports.map(layer2Port), DEFAULT_SETTINGS));
  const ours = async () => [...(await ebtables()).keys()].filter((name) => name.startsWith('vgl2-') || name === 'vif-guard-l2');

  beforeAll(async () => {
    await lab.create();
    xen = new FakeXenHost(lab, variant);
    await xen.setup('layer2_tool = ebtables\n');
    xen.useEbtablesNft();
    for (const domid of domids) {
      const guest = await lab.addGuest(`l${domid}`, `vif${domid}.0`, domid + 10);
      const addresses = parseAddressList(`${subnet}.${domid + 10}`, { source: 'test' });
      ports.push({ ifname: `vif${domid}.0`, guest: `guest${domid}`, bridge: 'xenbr0', mac: guest.mac, addresses, key: `xen:${domid}/0` });
      xen.defineVif(domid, 0, `guest${domid}`, { ip: addresses.map((a) => a.cidr).join(' '), mac: guest.mac, bridge: 'xenbr0' });
    }
  }, 180_000);

  afterAll(async () => {
    await lab.destroy();
    xen?.cleanup();
  });

  it(`${GUESTS} onlines at once, plus repeats, leave exactly the chains a full plan builds`, async () => {
    // A repeat starts once its vif's first online is done: the stock add_to_bridge is check-then-act, so two
    // onlines of one vif at the same instant fail in vif-bridge itself (libxl never does that).
    const online = (domid: number) => xen.hotplug('vif-bridge', ['online', 'type_if=vif'], domid, 0);
    const firsts = domids.map(online);
    const repeats = [1, 2, 3].map((domid) => (firsts[domid - 1] as ReturnType<typeof online>).then(() => online(domid)));
    const results = await Promise.all([...firsts, ...repeats]);
    expect(results.map((r) => r.exitCode), xen.hotplugLog()).toEqual(results.map(() => 0));
    expect(await exact()).toBe(true);
    expect(await xen.bridgeTable()).toBe('');
  }, 120_000);

  it('offlines at once remove exactly their chains', async () => {
    const gone = [2, 5, 11];
    const results = await Promise.all(gone.map((domid) => xen.hotplug('vif-bridge', ['offline', 'type_if=vif'], domid, 0)));
    expect(results.map((r) => r.exitCode), xen.hotplugLog()).toEqual(results.map(() => 0));
    const left = ports.filter((port) => !gone.some((domid) => port.ifname === `vif${domid}.0`));
    expect(ebtablesCurrent(await ebtables(), buildEbtables(left.map(layer2Port), DEFAULT_SETTINGS))).toBe(true);
    // Back up for what follows.
    for (const domid of gone) expect((await xen.hotplug('vif-bridge', ['online', 'type_if=vif'], domid, 0)).exitCode).toBe(0);
    expect(await exact()).toBe(true);
  }, 120_000);

  it('sync moves every port to the bridge table and back, and layer2 = no leaves neither', async () => {
    config('layer2_tool = nftables\n');
    expect((await xen.cli(['sync'])).exitCode).toBe(0);
    const table = await xen.bridgeTable();
    for (const port of ports) expect(table).toContain(`"${port.ifname}"`);
    expect(await ours()).toEqual([]);

    config('layer2_tool = ebtables\n');
    expect((await xen.cli(['sync'])).exitCode).toBe(0);
    expect(await exact()).toBe(true);
    expect(await xen.bridgeTable()).toBe('');
    // Nothing to do the second time.
    const again = await xen.cli(['sync', '--dry-run']);
    expect(again.exitCode).toBe(0);
    expect(`${again.stdout}${again.stderr}`).not.toContain('ebtables-restore');

    config('layer2 = no\n');
    expect((await xen.cli(['sync'])).exitCode).toBe(0);
    expect(await ours()).toEqual([]);
    expect(await xen.bridgeTable()).toBe('');
    // The IP checks stay.
    expect(await xen.save('filter')).toContain(':vif-guard-i-vif1.0');

    // --dry-run shows the ebtables payload it would send, and sends nothing.
    config('layer2_tool = ebtables\n');
    const dry = await xen.cli(['sync', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(`${dry.stdout}${dry.stderr}`).toMatch(/ebtables-restore --noflush:\n\*nat\n-N vif-guard-l2 -P RETURN/);
    expect(await ours()).toEqual([]);
  }, 120_000);
});
