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
 * rest wait in the socket's buffer (~13 KB here), so the window only saves round trips. Its limit on
 * outstanding requests (quota "outstanding", 20) is for guests' rings, not dom0's socket, and it holds
 * requests back rather than failing them. Against the stand-in at 4,000 domains (a process's first
 * read of them, medians of 5): 32 took ~340 ms, 64 ~250, 128 ~225, 256 ~205, 512 ~215.
 */
const WINDOW = 256;

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

/** Requests `[from, to)` of `paths`, one message each (header, the path, its NUL), in one buffer: one write. */
function messages(type: number, paths: readonly string[], from: number, to: number, firstId: number): Buffer {
  let size = 0;
  for (let i = from; i < to; i += 1) size += HEADER + Buffer.byteLength(paths[i] as string) + 1;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = from; i < to; i += 1) {
    const path = paths[i] as string;
    const length = out.write(path, at + HEADER, 'utf8') + 1;
    if (length > PAYLOAD_MAX) throw new VifGuardError('XENSTORE', `xenstore path too long: ${path.slice(0, 80)}`);
    out.writeUInt32LE(type, at);
    out.writeUInt32LE(firstId + i - from, at + 4);
    out.writeUInt32LE(0, at + 8);
    out.writeUInt32LE(length, at + 12);
    out[at + HEADER + length - 1] = 0;
    at += HEADER + length;
  }
  return out;
}

const message = (type: number, id: number, strings: readonly string[]): Buffer => messages(type, [strings.map((text, i) => (i < strings.length - 1 ? `${text}\0` : text)).join('')], 0, 1, id);

/** The error a reply carries (`ENOENT`, `E2BIG`, ...), or undefined for a normal reply. */
const errorOf = (reply: Reply) => (reply.type === XS_ERROR ? reply.payload.toString('latin1').replace(/\0.*$/s, '') : undefined);
const names = (text: string) => text.split('\0').slice(0, -1);

/**
 * One bulk of requests of one type (bulk()), ids `[firstId, firstId + count)`: each refill of the
 * window is one buffer and one write, and replies are kept as their type and text by index, with no
 * promise, closure or buffer per request. A sync's first read of 4,000 domains (~28,000 requests)
 * took ~340-420 ms of CPU with those per request (and a write each, corked), ~130-170 ms this way.
 */
interface Bulk {
  readonly type: number;
  readonly paths: readonly string[];
  readonly firstId: number;
  readonly types: Uint32Array;
  readonly texts: string[];
  sent: number;
  received: number;
  readonly done: (error?: VifGuardError) => void;
}

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
  const bulks = new Set<Bulk>();
  let nextId = 1;
  let pending: Buffer = Buffer.alloc(0);
  let failure: VifGuardError | undefined;
  const fail = (error: VifGuardError) => {
    failure ??= error;
    for (const { reject } of waiting.values()) reject(failure);
    waiting.clear();
    for (const bulk of bulks) bulk.done(failure);
    bulks.clear();
    socket.destroy();
  };
  const timer = setTimeout(() => fail(new VifGuardError('XENSTORE', `xenstored did not answer within ${timeoutMs / 1000} s (${path})`)), timeoutMs);
  timer.unref();
  /** `count` request ids in a row (they wrap before xenstored's own limit). */
  const ids = (count: number) => {
    if (nextId + count >= 0xfffffff0) nextId = 1;
    const first = nextId;
    nextId += count;
    return first;
  };
  /** Keep WINDOW of a bulk's requests in flight: the ones a burst of replies made room for, in one write. */
  const refill = (bulk: Bulk) => {
    const to = Math.min(bulk.paths.length, bulk.received + WINDOW);
    if (to <= bulk.sent) return;
    const from = bulk.sent;
    let batch: Buffer;
    try {
      batch = messages(bulk.type, bulk.paths, from, to, bulk.firstId + from);
    } catch (error) {
      // A path too long to send: that bulk fails alone, and nothing of it is in flight past what was sent.
      bulks.delete(bulk);
      return bulk.done(error as VifGuardError);
    }
    bulk.sent = to;
    socket.write(batch);
  };
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let at = 0;
    const touched = new Set<Bulk>();
    while (pending.length - at >= HEADER) {
      const length = pending.readUInt32LE(at + 12);
      if (length > PAYLOAD_MAX) return fail(new VifGuardError('XENSTORE', `xenstored sent a ${length}-byte message, more than the protocol allows (${path})`));
      if (pending.length - at < HEADER + length) break;
      const [type, id, start] = [pending.readUInt32LE(at), pending.readUInt32LE(at + 4), at + HEADER];
      at = start + length;
      let bulk: Bulk | undefined;
      for (const candidate of bulks) if (id - candidate.firstId >= 0 && id - candidate.firstId < candidate.sent) bulk = candidate;
      if (bulk) {
        const index = id - bulk.firstId;
        bulk.types[index] = type;
        bulk.texts[index] = pending.toString('utf8', start, at);
        bulk.received += 1;
        touched.add(bulk);
        continue;
      }
      const waiter = waiting.get(id);
      // Anything not asked for (a watch event: none are set here) is ignored.
      if (!waiter) continue;
      waiting.delete(id);
      waiter.resolve({ type, payload: Buffer.from(pending.subarray(start, at)) });
    }
    pending = at === pending.length ? Buffer.alloc(0) : pending.subarray(at);
    for (const bulk of touched) {
      if (bulk.received < bulk.paths.length) refill(bulk);
      else {
        bulks.delete(bulk);
        bulk.done();
      }
    }
  });
  socket.on('error', (error) => fail(new VifGuardError('XENSTORE', `cannot read xenstore through ${path}: ${error.message}`)));
  socket.on('close', () => fail(new VifGuardError('XENSTORE', `xenstored closed the connection (${path})`)));

  /** One request on its own (the parts of a long list). */
  const request = (type: number, strings: readonly string[]): Promise<Reply> => {
    if (failure) return Promise.reject(failure);
    const id = ids(1);
    return new Promise<Reply>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      socket.write(message(type, id, strings));
    });
  };

  /**
   * One request per path, WINDOW of them in flight on the connection; each reply's type and text in
   * the paths' order. xenstored answers a connection's requests in order, one at a time.
   */
  const bulk = (type: number, paths: readonly string[]): Promise<{ types: Uint32Array; texts: string[] }> => {
    if (failure) return Promise.reject(failure);
    if (paths.length === 0) return Promise.resolve({ types: new Uint32Array(0), texts: [] });
    return new Promise((resolve, reject) => {
      const one: Bulk = {
        type,
        paths,
        firstId: ids(paths.length),
        types: new Uint32Array(paths.length),
        texts: new Array<string>(paths.length),
        sent: 0,
        received: 0,
        done: (error) => (error ? reject(error) : resolve({ types: one.types, texts: one.texts })),
      };
      bulks.add(one);
      refill(one);
    });
  };

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
        if (list.length <= 1 || list[list.length - 2] === 0) return names(list.subarray(0, Math.max(0, list.length - 1)).toString('utf8'));
      }
    }
    throw unexpected('list', path, 'it kept changing while being read');
  }

  /** A reply's error (`ENOENT`, `E2BIG`, ...), or undefined for a normal reply. */
  const errorIn = (types: Uint32Array, texts: readonly string[], i: number) => (types[i] === XS_ERROR ? (texts[i] as string).replace(/\0.*$/s, '') : undefined);

  return {
    read: async (paths) => {
      const { types, texts } = await bulk(XS_READ, paths);
      return paths.map((path, i) => {
        const error = errorIn(types, texts, i);
        if (error === 'ENOENT') return undefined;
        if (error !== undefined) throw unexpected('read', path, error);
        return texts[i];
      });
    },
    directory: async (paths) => {
      const { types, texts } = await bulk(XS_DIRECTORY, paths);
      return Promise.all(
        paths.map((path, i) => {
          const error = errorIn(types, texts, i);
          if (error === 'ENOENT') return undefined;
          if (error === 'E2BIG') return directoryInParts(path);
          if (error !== undefined) throw unexpected('list', path, error);
          return names(texts[i] as string);
        }),
      );
    },
    close: () => {
      clearTimeout(timer);
      socket.removeAllListeners('close');
      socket.destroy();
    },
  };
}
