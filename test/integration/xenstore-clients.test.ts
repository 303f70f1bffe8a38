import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listRunningVifs } from '../../lib/xen/inventory.js';
import { createRunner } from '../../lib/runner.js';
import { startXenstore } from '../helpers/xen.js';
import { scratchDir } from '../helpers/scratch.js';

// sync reads xenstore over xenstored's socket when it can, and through Debian's real clients when it
// cannot (no socket: xenstored in a stub domain). Both must see the same vifs.
const root = scratchDir('vif-guard-xs-clients-');
const store = join(root, 'xs');
const bin = join(root, 'bin');
const socket = join(root, 'xenstored.socket');
let daemon: ChildProcess | undefined;

function node(path: string, value: string): void {
  mkdirSync(join(store, path), { recursive: true });
  writeFileSync(join(store, path, '.value'), value);
}

beforeAll(async () => {
  // More domains than one message lists (the clients then ask in parts, as vif-guard does), more
  // paths than one client call takes (they are batched), vifs with and without optional nodes.
  for (let domid = 1; domid <= 1100; domid += 1) {
    node(`local/domain/${domid}/name`, `guest-${domid}`);
    const base = `local/domain/0/backend/vif/${domid}/0`;
    node(`${base}/mac`, `00:16:3e:00:${(domid >> 8).toString(16).padStart(2, '0')}:${(domid & 255).toString(16).padStart(2, '0')}`);
    node(`${base}/bridge`, `xenbr${domid % 3}`);
    node(`${base}/type`, 'vif');
    node(`${base}/hotplug-status`, 'connected');
    if (domid % 2) node(`${base}/ip`, `10.0.${domid >> 8}.${domid & 255}`);
    if (domid % 5 === 0) node(`${base}/vifname`, `web${domid}`);
  }
  node('local/domain/0/backend/vif/12/1/mac', '00:16:3e:aa:00:01');
  node('local/domain/0/backend/vif/12/1/type', 'vif_ioemu');
  mkdirSync(join(store, 'local/domain/0/backend/vif/13'), { recursive: true });
  daemon = await startXenstore(store, bin, socket);
}, 120_000);

afterAll(() => {
  daemon?.kill();
});

describe('xenstore: the socket and the real clients agree', () => {
  it('every vif, its nodes and its domain name, the same both ways', async () => {
    const saved = process.env.XENSTORED_PATH;
    try {
      process.env.XENSTORED_PATH = socket;
      const direct = await listRunningVifs(createRunner({ light: true }));
      // No socket: the clients (the wrappers point them at the same daemon).
      process.env.XENSTORED_PATH = join(root, 'no-socket');
      const clients = await listRunningVifs(createRunner({ binDirs: [bin], light: true }));
      expect(direct).toHaveLength(1101);
      expect(clients).toEqual(direct);
      expect(direct?.find((vif) => vif.domid === '12' && vif.devid === '1')).toEqual({ domid: '12', devid: '1', nodes: { mac: '00:16:3e:aa:00:01', type: 'vif_ioemu' }, name: 'guest-12' });
      expect(direct?.find((vif) => vif.domid === '10')?.nodes).toEqual({ vifname: 'web10', mac: '00:16:3e:00:00:0a', bridge: 'xenbr1', type: 'vif' });
    } finally {
      if (saved === undefined) delete process.env.XENSTORED_PATH;
      else process.env.XENSTORED_PATH = saved;
    }
  }, 120_000);
});
