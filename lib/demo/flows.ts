/** One datagram the demo sends, and where it should (or should not) arrive. */
export interface Flow {
  readonly id: string;
  readonly what: string;
  readonly kind: 'legitimate' | 'attack';
  readonly from: string;
  readonly bind: string;
  readonly sport: number;
  readonly to: string;
  readonly dport: number;
  /** Guest names, or 'dom0', that listen on dport; the flow "passed" if any of them received it. */
  readonly receivers: readonly string[];
}

export function demoFlows(ip: (name: string) => string, dom0Ip: string): Flow[] {
  const flow = (f: Flow) => f;
  return [
    flow({ id: 'own-to-neighbour', what: 'web -> db from its own address', kind: 'legitimate', from: 'web', bind: ip('web'), sport: 4000, to: ip('db'), dport: 5000, receivers: ['db'] }),
    flow({ id: 'own-to-dom0', what: 'web -> dom0 from its own address', kind: 'legitimate', from: 'web', bind: ip('web'), sport: 4001, to: dom0Ip, dport: 5000, receivers: ['dom0'] }),
    flow({ id: 'hostile-own', what: 'evil -> db from its own address', kind: 'legitimate', from: 'evil', bind: ip('evil'), sport: 4002, to: ip('db'), dport: 5000, receivers: ['db'] }),
    flow({ id: 'dhcp-request', what: 'db broadcasts a DHCP request (68 -> 67)', kind: 'legitimate', from: 'db', bind: '0.0.0.0', sport: 68, to: '255.255.255.255', dport: 67, receivers: ['dom0'] }),
    flow({ id: 'spoof-neighbour', what: 'evil -> db from an unassigned address', kind: 'attack', from: 'evil', bind: '198.51.100.66', sport: 4003, to: ip('db'), dport: 5000, receivers: ['db'] }),
    flow({ id: 'steal-neighbour', what: 'evil -> db from web\'s address', kind: 'attack', from: 'evil', bind: ip('web'), sport: 4004, to: ip('db'), dport: 5000, receivers: ['db'] }),
    flow({ id: 'spoof-dom0', what: 'evil -> dom0 from an unassigned address', kind: 'attack', from: 'evil', bind: '198.51.100.66', sport: 4005, to: dom0Ip, dport: 5000, receivers: ['dom0'] }),
    flow({ id: 'steal-dom0', what: 'evil -> dom0 from web\'s address', kind: 'attack', from: 'evil', bind: ip('web'), sport: 4006, to: dom0Ip, dport: 5000, receivers: ['dom0'] }),
    flow({ id: 'rogue-dhcp', what: 'evil answers DHCP for the bridge (67 -> 68)', kind: 'attack', from: 'evil', bind: ip('evil'), sport: 67, to: '255.255.255.255', dport: 68, receivers: ['web', 'db'] }),
  ];
}
