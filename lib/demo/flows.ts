/** One thing the demo does, and what shows whether it got through. */
export interface Flow {
  readonly id: string;
  readonly what: string;
  readonly kind: 'legitimate' | 'attack';
  /**
   * udp: a datagram from `bind`, received (or not) by a listener on a receiver;
   * mac: the same from a guest that changed its MAC first;
   * arp-claim: the guest talks to dom0 from a stolen address, so its ARP claims it (dom0's cache shows it);
   * ra: a router advertisement (the victim's routes show it); vlan: a tagged frame (captured at the receiver);
   * nd-claim: a neighbour advertisement for another guest's IPv6 address (the victim's neighbour cache shows it).
   */
  readonly via: 'udp' | 'mac' | 'arp-claim' | 'ra' | 'vlan' | 'nd-claim';
  readonly from: string;
  readonly bind: string;
  readonly sport: number;
  readonly to: string;
  readonly dport: number;
  /** Guest names, or 'dom0', that should (or should not) see it. */
  readonly receivers: readonly string[];
  /** Needs python3 for a hand-built frame. */
  readonly raw?: boolean;
}

export const DEMO6 = '2001:db8:5100:0';

export function demoFlows(ip: (name: string) => string, ip6: (name: string) => string, dom0Ip: string): Flow[] {
  const udp = (f: Omit<Flow, 'via'>): Flow => ({ ...f, via: 'udp' });
  return [
    udp({ id: 'own-to-neighbour', what: 'web -> db from its own address', kind: 'legitimate', from: 'web', bind: ip('web'), sport: 4000, to: ip('db'), dport: 5000, receivers: ['db'] }),
    udp({ id: 'own-to-dom0', what: 'web -> dom0 from its own address', kind: 'legitimate', from: 'web', bind: ip('web'), sport: 4001, to: dom0Ip, dport: 5000, receivers: ['dom0'] }),
    udp({ id: 'hostile-own', what: 'evil -> db from its own address', kind: 'legitimate', from: 'evil', bind: ip('evil'), sport: 4002, to: ip('db'), dport: 5000, receivers: ['db'] }),
    udp({ id: 'dhcp-request', what: 'db broadcasts a DHCP request (68 -> 67)', kind: 'legitimate', from: 'db', bind: '0.0.0.0', sport: 68, to: '255.255.255.255', dport: 67, receivers: ['dom0'] }),
    udp({ id: 'own6-to-neighbour', what: 'db -> web over IPv6 from its own address', kind: 'legitimate', from: 'db', bind: ip6('db'), sport: 4007, to: ip6('web'), dport: 5000, receivers: ['web'] }),
    udp({ id: 'spoof-neighbour', what: 'evil -> db from an unassigned address', kind: 'attack', from: 'evil', bind: '198.51.100.66', sport: 4003, to: ip('db'), dport: 5000, receivers: ['db'] }),
    udp({ id: 'steal-neighbour', what: 'evil -> db from web\'s address', kind: 'attack', from: 'evil', bind: ip('web'), sport: 4004, to: ip('db'), dport: 5000, receivers: ['db'] }),
    udp({ id: 'spoof-dom0', what: 'evil -> dom0 from an unassigned address', kind: 'attack', from: 'evil', bind: '198.51.100.66', sport: 4005, to: dom0Ip, dport: 5000, receivers: ['dom0'] }),
    udp({ id: 'steal-dom0', what: 'evil -> dom0 from web\'s address', kind: 'attack', from: 'evil', bind: ip('web'), sport: 4006, to: dom0Ip, dport: 5000, receivers: ['dom0'] }),
    udp({ id: 'rogue-dhcp', what: 'evil answers DHCP for the bridge (67 -> 68)', kind: 'attack', from: 'evil', bind: ip('evil'), sport: 67, to: '255.255.255.255', dport: 68, receivers: ['web', 'db'] }),
    udp({ id: 'steal6-neighbour', what: 'evil -> web over IPv6 from db\'s address', kind: 'attack', from: 'evil', bind: ip6('db'), sport: 4008, to: ip6('web'), dport: 5000, receivers: ['web'] }),
    { id: 'changed-mac', what: 'evil -> db from its own address, after changing its MAC', kind: 'attack', via: 'mac', from: 'evil', bind: ip('evil'), sport: 4009, to: ip('db'), dport: 5000, receivers: ['db'] },
    { id: 'arp-claim', what: 'evil\'s ARP claims web\'s address (dom0\'s ARP cache)', kind: 'attack', via: 'arp-claim', from: 'evil', bind: ip('web'), sport: 4010, to: dom0Ip, dport: 5001, receivers: ['dom0'] },
    { id: 'nd-claim', what: 'evil\'s neighbour advertisement claims web\'s IPv6 address (db\'s neighbour cache)', kind: 'attack', via: 'nd-claim', from: 'evil', bind: ip6('web'), sport: 0, to: 'ff02::1', dport: 0, receivers: ['db'], raw: true },
    { id: 'rogue-ra', what: 'evil advertises itself as IPv6 router (web\'s routes)', kind: 'attack', via: 'ra', from: 'evil', bind: '', sport: 0, to: 'ff02::1', dport: 0, receivers: ['web'], raw: true },
    { id: 'vlan-spoof', what: 'evil -> db in a VLAN-tagged frame, unassigned address', kind: 'attack', via: 'vlan', from: 'evil', bind: '198.51.100.66', sport: 4011, to: ip('db'), dport: 5000, receivers: ['db'], raw: true },
  ];
}
