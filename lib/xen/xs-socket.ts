import { existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { VifGuardError } from '../errors.js';

/**
 * xenstored's Unix socket, spoken directly for sync's bulk reads (xen/include/public/io/xs_wire.h):
 * each message is a 16-byte header (type, request id, transaction id, payload length; little-endian)
 * and a payload of NUL-terminated strings, at most 4,096 bytes either way.
 *
 * Why not the clients: with thousands of domains, sync's reads are ~7 requests per vif, and
 * `xenstore-read` / `xenstore-list` wait for each reply before sending the next and need a process
 * per few hundred paths (a transaction may touch only so many nodes). Measured at 4,000 domains
 * against the stand-in daemon: 2.3 s through 71 client processes. Here requests are pipelined, a
 * window of them in flight on one connection, with no transaction (a vif's nodes are read as the
 * clients read them: each call in its own). Hooks, which read a few nodes of one vif, keep the
 * clients, exactly as the stock scripts use them.
 */

const XS_DIRECTORY = 1;
const XS_READ = 2;
const XS_ERROR = 16;
const XS_DIRECTORY_PART = 22;
const HEADER = 16;
const PAYLOAD_MAX = 4096;
/**
 * Requests in flight at once. xenstored takes a connection's requests one at a time in order; the
 * rest wait in the socket's buffer (a few KB here), so the window only saves round trips: against the
 * stand-in at 4,000 domains, 16 took the reads to ~500 ms, 64 to ~350, 256 to ~300.
 */
const WINDOW = 128;

/** Where libxenstore looks (xs_lib.c): XENSTORED_PATH, else the daemon's run directory. */
export function xenstoredSocketPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidates = [env.XENSTORED_PATH, env.XENSTORED_RUNDIR && `${env.XENSTORED_RUNDIR}/socket`, '/var/run/xenstored/socket', '/run/xenstored/socket'];
  return candidates.find((path): path is string => typeof path === 'string' && path !== '' && existsSync(path));
}

interface Reply {
  readonly type: number;
  readonly payload: Buffer;
}

export interface XenstoreSocket {
  /** Each path's value, undefined where the node does not exist. */
  read(paths: readonly string[]): Promise<(string | undefined)[]>;
  /** Each path's children, undefined where the node does not exist. */
  directory(paths: readonly string[]): Promise<(string[] | undefined)[]>;
  close(): void;
}

function message(type: number, id: number, strings: readonly string[]): Buffer {
  const payload = Buffer.from(strings.map((text) => `${text}\0`).join(''), 'utf8');
  if (payload.length > PAYLOAD_MAX) throw new VifGuardError('XENSTORE', `xenstore path too long: ${strings[0]?.slice(0, 80) ?? ''}`);
  const header = Buffer.alloc(HEADER);
  header.writeUInt32LE(type, 0);
  header.writeUInt32LE(id, 4);
  header.writeUInt32LE(0, 8);
  header.writeUInt32LE(payload.length, 12);
  return Buffer.concat([header, payload]);
}

/** The error a reply carries (`ENOENT`, `E2BIG`, ...), or undefined for a normal reply. */
const errorOf = (reply: Reply) => (reply.type === XS_ERROR ? reply.payload.toString('latin1').replace(/\0.*$/s, '') : undefined);
const names = (payload: Buffer) => payload.toString('utf8').split('\0').slice(0, -1);

/**
 * A connection to xenstored, or undefined when there is no socket to connect to (a dom0 whose
 * xenstored runs in a stub domain, reached through /dev/xen/xenbus: the clients handle that).
 */
export async function openXenstoreSocket(path = xenstoredSocketPath(), timeoutMs = 20_000): Promise<XenstoreSocket | undefined> {
  if (path === undefined) return undefined;
  const socket: Socket = createConnection(path);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
  } catch {
    socket.destroy();
    return undefined;
  }
  const waiting = new Map<number, { resolve: (reply: Reply) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  let pending: Buffer = Buffer.alloc(0);
  let failure: VifGuardError | undefined;
  const fail = (error: VifGuardError) => {
    failure ??= error;
    for (const { reject } of waiting.values()) reject(failure);
    waiting.clear();
    socket.destroy();
  };
  const timer = setTimeout(() => fail(new VifGuardError('XENSTORE', `xenstored did not answer within ${timeoutMs / 1000} s (${path})`)), timeoutMs);
  timer.unref();
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= HEADER) {
      const length = pending.readUInt32LE(12);
      if (length > PAYLOAD_MAX) return fail(new VifGuardError('XENSTORE', `xenstored sent a ${length}-byte message, more than the protocol allows (${path})`));
      if (pending.length < HEADER + length) break;
      const reply = { type: pending.readUInt32LE(0), payload: pending.subarray(HEADER, HEADER + length) };
      const id = pending.readUInt32LE(4);
      pending = pending.subarray(HEADER + length);
      const waiter = waiting.get(id);
      // Anything not asked for (a watch event: none are set here) is ignored.
      if (!waiter) continue;
      waiting.delete(id);
      waiter.resolve(reply);
    }
  });
  socket.on('error', (error) => fail(new VifGuardError('XENSTORE', `cannot read xenstore through ${path}: ${error.message}`)));
  socket.on('close', () => fail(new VifGuardError('XENSTORE', `xenstored closed the connection (${path})`)));

  const request = (type: number, strings: readonly string[]): Promise<Reply> => {
    if (failure) return Promise.reject(failure);
    const id = nextId;
    nextId = nextId >= 0xfffffff0 ? 1 : nextId + 1;
    return new Promise<Reply>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      // The requests sent in one turn of the event loop (the window refilled by a burst of replies) in one write.
      if (!socket.writableCorked) {
        socket.cork();
        process.nextTick(() => socket.uncork());
      }
      socket.write(message(type, id, strings));
    });
  };

  /** One request per item, WINDOW of them in flight; results in the items' order. */
  async function each<T, R>(items: readonly T[], one: (item: T) => Promise<R>): Promise<R[]> {
    const results = new Array<R>(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const at = next;
        next += 1;
        results[at] = await one(items[at] as T);
      }
    };
    await Promise.all(Array.from({ length: Math.min(WINDOW, items.length) }, worker));
    return results;
  }

  const unexpected = (what: string, path: string, error: string) => new VifGuardError('XENSTORE', `cannot ${what} ${path} in xenstore: ${error}`);

  /** A list longer than one message, in parts (libxenstore's xs_directory_part): restarted if the node changes meanwhile. */
  async function directoryInParts(path: string): Promise<string[] | undefined> {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      let generation: string | undefined;
      let list: Buffer = Buffer.alloc(0);
      for (;;) {
        const reply = await request(XS_DIRECTORY_PART, [path, String(list.length)]);
        const error = errorOf(reply);
        if (error === 'ENOENT') return undefined;
        if (error !== undefined) throw unexpected('list', path, error);
        const cut = reply.payload.indexOf(0);
        const gen = reply.payload.subarray(0, cut).toString('latin1');
        if (generation !== undefined && gen !== generation) break;
        generation = gen;
        list = Buffer.concat([list, reply.payload.subarray(cut + 1)]);
        // The last part ends with an empty name: two NULs.
        if (list.length <= 1 || list[list.length - 2] === 0) return names(list.subarray(0, Math.max(0, list.length - 1)));
      }
    }
    throw unexpected('list', path, 'it kept changing while being read');
  }

  return {
    read: (paths) =>
      each(paths, async (path) => {
        const reply = await request(XS_READ, [path]);
        const error = errorOf(reply);
        if (error === 'ENOENT') return undefined;
        if (error !== undefined) throw unexpected('read', path, error);
        return reply.payload.toString('utf8');
      }),
    directory: (paths) =>
      each(paths, async (path) => {
        const reply = await request(XS_DIRECTORY, [path]);
        const error = errorOf(reply);
        if (error === 'ENOENT') return undefined;
        if (error === 'E2BIG') return directoryInParts(path);
        if (error !== undefined) throw unexpected('list', path, error);
        return names(reply.payload);
      }),
    close: () => {
      clearTimeout(timer);
      socket.removeAllListeners('close');
      socket.destroy();
    },
  };
}
