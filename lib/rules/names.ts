/** Chain names. iptables allows 28 characters; interface names have at most 15, so every name below fits. */
export const FORWARD_CHAIN = 'vif-guard-fwd';
export const IN_ROOT = 'vif-guard-in';
export const OUT_ROOT = 'vif-guard-out';

export type Direction = 'in' | 'out';

/** Traffic from the guest (physdev-in = port). */
export const portInChain = (ifname: string): string => `vif-guard-i-${ifname}`;
/** Traffic to the guest (physdev-out = port). */
export const portOutChain = (ifname: string): string => `vif-guard-o-${ifname}`;
export const dispatchChain = (direction: Direction, prefix: string): string =>
  `vif-guard-d${direction === 'in' ? 'i' : 'o'}-${prefix}`;

const PORT_IN = /^vif-guard-i-(.+)$/;

/** The interface name a per-port chain belongs to, or undefined for any other chain. */
export function portOfChain(chain: string): string | undefined {
  return PORT_IN.exec(chain)?.[1];
}
