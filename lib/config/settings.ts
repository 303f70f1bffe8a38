/** What vif-guard.conf can change. Defaults are what a hosting admin should get without a config file. */
export interface Settings {
  /**
   * `auto`: the nftables backend (every check in nft's bridge family) when the kernel has nf_tables,
   * else iptables. `iptables` picks the iptables variant in use; `nft` / `legacy` force one.
   */
  readonly backend: 'auto' | 'nftables' | 'iptables' | 'nft' | 'legacy';
  /** Raw-table NOTRACK for bridged guest traffic, so guests cannot fill the host's conntrack table. */
  readonly notrack: boolean;
  /** What a vif with no `ip=` gets: `allow` leaves it alone (as Xen does), `block` drops all but DHCP. */
  readonly unaddressed: 'allow' | 'block';
  /** LOG dropped packets (rate-limited per port). */
  readonly log: boolean;
  /** Log lines per minute per port and class, 1-59. */
  readonly logPerMinute: number;
  readonly logBurst: number;
  /**
   * MAC, ARP and ethertype checks and NOTRACK, in nft's bridge family. `off` is for kernels without
   * nf_tables (OpenVZ 6's 2.6.32): IP checks only, chosen by the admin, reported by doctor.
   */
  readonly layer2: boolean;
  /**
   * What enforces layer 2 on the iptables backend: nft's bridge family, or ebtables (nat PREROUTING)
   * on kernels that cannot load the bridge table. `auto` asks the kernel (see core/choose.ts layer2Tool).
   */
  readonly layer2Tool: 'auto' | 'nftables' | 'ebtables';
  /** Ethertypes a guarded guest may send besides IPv4, ARP and IPv6 (nft names or 0x numbers), e.g. `vlan`. */
  readonly extraEthertypes: readonly string[];
  /** Seconds to wait for vif-guard's lock and the xtables lock; libxl kills hooks at 40 s. */
  readonly lockTimeout: number;
  /** Where xl/xm domU configs live, for `sync`. */
  readonly xenConfigDir: string;
  /** Xen's hotplug scripts (vif-bridge, vif-post.d), for `doctor`. */
  readonly xenScriptsDir: string;
  /** xl's global config, for `doctor` (vif.default.script). */
  readonly xlConf: string;
  /** OpenVZ: the global config and the per-container configs. */
  readonly vzConf: string;
  readonly vzConfDir: string;
  /** vif-guard's per-container veth addresses (INI: [CTID] ifname = addresses). */
  readonly containersConf: string;
  /** Where `ve allow` persists the host modules it loaded. */
  readonly modulesLoadFile: string;
  readonly vznetConf: string;
}

export const DEFAULT_SETTINGS: Settings = {
  backend: 'auto',
  notrack: true,
  unaddressed: 'allow',
  log: true,
  logPerMinute: 6,
  logBurst: 10,
  layer2: true,
  layer2Tool: 'auto',
  extraEthertypes: [],
  lockTimeout: 20,
  xenConfigDir: '/etc/xen',
  xenScriptsDir: '/etc/xen/scripts',
  xlConf: '/etc/xen/xl.conf',
  vzConf: '/etc/vz/vz.conf',
  vzConfDir: '/etc/vz/conf',
  containersConf: '/etc/vif-guard/containers.conf',
  modulesLoadFile: '/etc/modules-load.d/vif-guard-openvz.conf',
  vznetConf: '/etc/vz/vznet.conf',
};

/** The iptables variant setting for the iptables backend (and for cleaning up after it). */
export function iptablesVariant(settings: Settings): 'auto' | 'nft' | 'legacy' {
  return settings.backend === 'nft' || settings.backend === 'legacy' ? settings.backend : 'auto';
}
