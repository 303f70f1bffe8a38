import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { openXenstoreSocket, xenstoredSocketPath } from '../../../lib/xen/xs-socket.js';
import { listRunningVifs } from '../../../lib/xen/inventory.js';
import { createRecordingRunner } from '../../helpers/recording-runner.js';
import { scratchDir } from '../../helpers/scratch.js';

// The stand-in daemon speaks xenstored's protocol as Debian's real clients expect it (the integration
// tests run those against it); here it checks vif-guard's own client of that protocol.
const root = scratchDir('vif-guard-xs-');
const store = join(root, 'xs');
const socket = join(root, 'xenstored.socket');
let daemon: ChildProcess;

function node(path: string, value: string): void {
  mkdirSync(join(store, path), { recursive: true });
  writeFileSync(join(store, path, '.value'), value);
}

beforeAll(async () => {
  // 1,200 domains: `backend/vif` lists more than one message holds (DIRECTORY_PART).
  for (let domid = 1; domid <= 1200; domid += 1) {
    node(`local/domain/${domid}/name`, `guest${domid}`);
    node(`local/domain/0/backend/vif/${domid}/0/mac`, '00:16:3e:00:00:01');
    node(`local/domain/0/backend/vif/${domid}/0/bridge`, 'xenbr0');
  }
  node('local/domain/0/backend/vif/7/1/ip', '192.0.2.7 2001:db8::7');
  node('local/domain/0/backend/vif/7/1/vifname', 'web-eth1');
  node('local/domain/0/backend/vif/7/1/type', 'vif');
  node('local/domain/0/backend/vif/7/1/frontend', '/local/domain/7/device/vif/1');
  node('local/domain/0/backend/vif/8/0/ip', 'line one\nline two');
  daemon = spawn(process.execPath, [resolve('test/fixtures/xenstored-standin.mjs'), socket, store], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(daemon.stdout as NodeJS.ReadableStream, 'data');
});

afterAll(() => {
  daemon?.kill();
});

describe('xenstored over its socket', () => {
  it('reads values and lists children, relative to dom0, undefined where nothing is', async () => {
    const xs = await openXenstoreSocket(socket);
    expect(xs).toBeDefined();
    try {
      expect(await xs?.read(['backend/vif/7/1/ip', '/local/domain/7/name', 'backend/vif/7/1/nothing', 'backend/vif/8/0/ip'])).toEqual(['192.0.2.7 2001:db8::7', 'guest7', undefined, 'line one\nline two']);
      const [vif7, missing] = (await xs?.directory(['backend/vif/7', 'backend/vif/9999'])) ?? [];
      expect(vif7?.sort()).toEqual(['0', '1']);
      expect(missing).toBeUndefined();
    } finally {
      xs?.close();
    }
  });

  it('a list longer than one message comes in parts, whole', async () => {
    const xs = await openXenstoreSocket(socket);
    try {
      const [domids] = (await xs?.directory(['backend/vif'])) ?? [];
      expect(domids).toHaveLength(1200);
      expect(new Set(domids).size).toBe(1200);
      expect(domids?.map(Number).sort((a, b) => a - b).at(-1)).toBe(1200);
    } finally {
      xs?.close();
    }
  });

  it('many requests at once come back in order', async () => {
    const xs = await openXenstoreSocket(socket);
    try {
      const paths = Array.from({ length: 1200 }, (_, i) => `/local/domain/${i + 1}/name`);
      expect(await xs?.read(paths)).toEqual(paths.map((_, i) => `guest${i + 1}`));
    } finally {
      xs?.close();
    }
  });

  it('requests side by side on one connection each get their own replies', async () => {
    const xs = await openXenstoreSocket(socket);
    try {
      const names = Array.from({ length: 700 }, (_, i) => `/local/domain/${i + 1}/name`);
      const bridges = Array.from({ length: 700 }, (_, i) => `backend/vif/${i + 1}/0/bridge`);
      const [got, vif, dirs] = await Promise.all([xs?.read(names), xs?.read(bridges), xs?.directory(['backend/vif', 'backend/vif/7'])]);
      expect(got).toEqual(names.map((_, i) => `guest${i + 1}`));
      expect(vif).toEqual(bridges.map(() => 'xenbr0'));
      expect(dirs?.[0]).toHaveLength(1200);
      expect(dirs?.[1]?.sort()).toEqual(['0', '1']);
    } finally {
      xs?.close();
    }
  });

  it('a path too long for one message fails its own call, and the connection stays usable', async () => {
    const xs = await openXenstoreSocket(socket);
    try {
      // Past the first window: some of the call's requests are in flight when it fails.
      const paths = [...Array.from({ length: 300 }, (_, i) => `/local/domain/${i + 1}/name`), `/local/domain/1/${'x'.repeat(5000)}`];
      await expect(xs?.read(paths)).rejects.toThrow('xenstore path too long: /local/domain/1/xxx');
      expect(await xs?.read(['/local/domain/2/name'])).toEqual(['guest2']);
    } finally {
      xs?.close();
    }
  });

  it('no socket, or nothing listening on it: undefined, so sync asks the clients', async () => {
    expect(await openXenstoreSocket(undefined)).toBeUndefined();
    expect(await openXenstoreSocket(join(root, 'nothing'))).toBeUndefined();
    expect(xenstoredSocketPath({ XENSTORED_PATH: socket })).toBe(socket);
    expect(xenstoredSocketPath({ XENSTORED_PATH: join(root, 'nothing'), XENSTORED_RUNDIR: root.replace(/\/?$/, '') })).toBeUndefined();
  });

  it('a daemon that hangs up mid-request is an error naming the socket, not a hang', async () => {
    const dead = join(root, 'dead.socket');
    const server = createServer((connection) => connection.once('data', () => connection.destroy()));
    await new Promise<void>((done) => server.listen(dead, done));
    try {
      const xs = await openXenstoreSocket(dead);
      await expect(xs?.read(['/local/domain/1/name'])).rejects.toThrow(`xenstored closed the connection (${dead})`);
      xs?.close();
    } finally {
      server.close();
    }
  });

  it('sync reads every vif over the socket, and needs no client then', async () => {
    const saved = process.env.XENSTORED_PATH;
    process.env.XENSTORED_PATH = socket;
    try {
      const { runner, calls } = createRecordingRunner(() => undefined, ['xenstore-list', 'xenstore-read']);
      const vifs = (await listRunningVifs(runner)) ?? [];
      expect(calls).toEqual([]);
      expect(vifs).toHaveLength(1201);
      expect(vifs.find((vif) => vif.domid === '7' && vif.devid === '1')).toEqual({ domid: '7', devid: '1', nodes: { vifname: 'web-eth1', ip: '192.0.2.7 2001:db8::7', type: 'vif' }, name: 'guest7' });
      expect(vifs.find((vif) => vif.domid === '8')?.nodes).toEqual({ ip: 'line one\nline two', mac: '00:16:3e:00:00:01', bridge: 'xenbr0' });
    } finally {
      if (saved === undefined) delete process.env.XENSTORED_PATH;
      else process.env.XENSTORED_PATH = saved;
    }
  });
});
