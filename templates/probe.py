#!/usr/bin/env python3
"""vif-guard's packet probe, run inside a network namespace (by the demo and the tests).

  probe.py send-hex --iface eth0 --hex FRAME [--count N]
      sends a hand-built Ethernet frame on an AF_PACKET socket, so any source MAC, ARP field,
      VLAN tag or IPv6 header is possible (frames are built by vif-guard's lib/demo/frames.ts).
  probe.py send --iface eth0 --dst-mac MAC --src IP --dst IP --sport N --dport N --token T
      builds and sends one Ethernet/IPv4/UDP frame (kept for simple cases).
  probe.py listen [--port N ...] [--port6 N ...] --seconds S
      receives UDP on ordinary IPv4/IPv6 sockets (so only what passed the host's firewall and
      reached the stack counts) and prints one JSON line {token, src, port} per datagram.
  probe.py capture --iface eth0 --seconds S
      prints one JSON line {hex} per frame arriving on the interface (ARP and other L2 checks).
Every loop is bounded in count and time.
"""
import argparse, json, select, socket, struct, sys, time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def raw_socket(iface):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    return sock


def send_hex(args):
    sock = raw_socket(args.iface)
    frame = bytes.fromhex(args.hex)
    for _ in range(min(args.count, 100)):
        sock.send(frame)


def send(args):
    payload = args.token.encode()
    udp = struct.pack("!HHHH", args.sport, args.dport, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x1234, 0, 64, 17, 0,
                         socket.inet_aton(args.src), socket.inet_aton(args.dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    sock = raw_socket(args.iface)
    src_mac = sock.getsockname()[4]
    dst_mac = bytes.fromhex(args.dst_mac.replace(":", ""))
    for _ in range(min(args.count, 100)):
        sock.send(dst_mac + src_mac + b"\x08\x00" + header + udp)


def listen(args):
    socks = []
    for family, ports in ((socket.AF_INET, args.port), (socket.AF_INET6, args.port6)):
        for port in ports:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.bind(("0.0.0.0", port))
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(("::", port))
            socks.append((sock, port))
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + min(args.seconds, 30)
    by_fd = dict((s.fileno(), p) for s, p in socks)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([s for s, _ in socks], [], [], left)
        for sock in ready:
            data, addr = sock.recvfrom(2048)
            print(json.dumps({"token": data.decode(errors="replace"), "src": addr[0], "port": by_fd[sock.fileno()]}), flush=True)


def capture(args):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((args.iface, 0))
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + min(args.seconds, 30)
    seen = 0
    while seen < 10000:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            frame, meta = sock.recvfrom(65535)
            if meta[2] != socket.PACKET_OUTGOING:
                print(json.dumps({"hex": frame.hex()}), flush=True)
                seen += 1


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("send-hex")
    h.add_argument("--iface", required=True)
    h.add_argument("--hex", required=True)
    h.add_argument("--count", type=int, default=2)
    s = sub.add_parser("send")
    s.add_argument("--iface", required=True)
    s.add_argument("--dst-mac", required=True)
    s.add_argument("--src", required=True)
    s.add_argument("--dst", required=True)
    s.add_argument("--sport", type=int, required=True)
    s.add_argument("--dport", type=int, required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--count", type=int, default=2)
    l = sub.add_parser("listen")
    l.add_argument("--port", type=int, action="append", default=[])
    l.add_argument("--port6", type=int, action="append", default=[])
    l.add_argument("--seconds", type=float, default=3.0)
    c = sub.add_parser("capture")
    c.add_argument("--iface", required=True)
    c.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    {"send-hex": send_hex, "send": send, "listen": listen, "capture": capture}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
