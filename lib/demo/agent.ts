import { createSocket, type Socket } from 'node:dgram';
import { existsSync, writeFileSync } from 'node:fs';

/** Inside a demo namespace: receive UDP on ports for a while, print one JSON line per datagram. */
export async function listen(ports: readonly number[], seconds: number, readyFile: string | undefined, ports6: readonly number[] = [], stopFile?: string): Promise<void> {
  const sockets: Socket[] = [];
  const wanted = [...ports.map((port) => ({ port, v6: false })), ...ports6.map((port) => ({ port, v6: true }))];
  await Promise.all(
    wanted.map(
      ({ port, v6 }) =>
        new Promise<void>((resolve, reject) => {
          const socket = createSocket({ type: v6 ? 'udp6' : 'udp4', reuseAddr: true, ipv6Only: v6 });
          socket.on('message', (data, info) => {
            process.stdout.write(`${JSON.stringify({ token: data.toString(), src: info.address, port })}\n`);
          });
          socket.once('error', reject);
          socket.bind({ port, address: v6 ? '::' : '0.0.0.0' }, () => {
            if (!v6) socket.setBroadcast(true);
            resolve();
          });
          sockets.push(socket);
        }),
    ),
  );
  process.stdout.write('{"ready":true}\n');
  if (readyFile) writeFileSync(readyFile, '');
  // Until the caller says stop (it has sent everything), or the time limit: bounded either way.
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline && !(stopFile && existsSync(stopFile))) await new Promise((resolve) => setTimeout(resolve, 25));
  for (const socket of sockets) socket.close();
}

/** Inside a demo namespace: send one datagram from a given local address and port (bounded: 3 copies). */
export async function send(options: { from: string; sport: number; to: string; dport: number; token: string }): Promise<void> {
  const socket = createSocket({ type: options.from.includes(':') ? 'udp6' : 'udp4', reuseAddr: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: options.from, port: options.sport }, () => resolve());
  });
  if (options.to.endsWith('.255')) socket.setBroadcast(true);
  for (let i = 0; i < 3; i += 1) {
    await new Promise<void>((resolve, reject) => socket.send(options.token, options.dport, options.to, (error) => (error ? reject(error) : resolve())));
  }
  socket.close();
}
