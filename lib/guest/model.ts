import type { GuestAddress } from './validate.js';
import { linkLocalFromMac } from './eui64.js';

/** One guarded network port on the host: a Xen vif or tap, or an OpenVZ veth. Values are validated. */
export interface GuestPort {
  /** Interface name in dom0 as the bridge sees it (the renamed `vifname` when set). */
  readonly ifname: string;
  /** Guest (domain or container) name, for logs and status; `-` when unknown. */
  readonly guest: string;
  readonly bridge: string | undefined;
  readonly mac: string | undefined;
  readonly addresses: readonly GuestAddress[];
  /** Where the port comes from, independent of its name: `xen:<domid>/<devid>`, `vz:<ctid>/<ifname>`. */
  readonly key?: string | undefined;
}

export function ipv4Addresses(port: GuestPort): GuestAddress[] {
  return port.addresses.filter((address) => address.family === 4);
}

/** The IPv6 addresses a guest may use as its own: the link-local its MAC gives it (first), then its configured ones. */
export function ipv6Identity(port: GuestPort): GuestAddress[] {
  const own = port.addresses.filter((address) => address.family === 6);
  return port.mac ? [linkLocalFromMac(port.mac), ...own] : own;
}
