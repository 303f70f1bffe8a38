import { createSocket, type Socket } from 'node:dgram';
import { writeFileSync } from 'node:fs';

/** Inside a demo namespace: receive UDP on ports for a while, print one JSON line per datagram. */
export async function listen(ports: readonly number[], seconds: number, readyFile: string | undefined): Promise<void> {
  const sockets: Socket[] = [];
  await Promise.all(
    ports.map(
      (port) =>
        new Promise<void>((resolve, reject) => {
          const socket = createSocket({ type: 'udp4', reuseAddr: true });
          socket.on('message', (data, info) => {
            process.stdout.write(`${JSON.stringify({ token: data.toString(), src: info.address, port })}\n`);
          });
          socket.once('error', reject);
          socket.bind({ port, address: '0.0.0.0' }, () => {
            socket.setBroadcast(true);
            resolve();
          });
          sockets.push(socket);
        }),
    ),
  );
  process.stdout.write('{"ready":true}\n');
  if (readyFile) writeFileSync(readyFile, '');
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  for (const socket of sockets) socket.close();
}

/** Inside a demo namespace: send one datagram from a given local address and port (bounded: 3 copies). */
export async function send(options: { from: string; sport: number; to: string; dport: number; token: string }): Promise<void> {
  const socket = createSocket({ type: 'udp4', reuseAddr: true });
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
