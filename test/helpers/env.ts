import { execFileSync } from 'node:child_process';

function has(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    return true;
  } catch {
    return false;
  }
}

/** Namespace tests need root, iproute2 and both iptables variants; without them they are skipped, loudly. */
export const NETNS_MISSING: string[] = [
  ...(process.getuid?.() === 0 ? [] : ['root']),
  ...['ip', 'iptables-nft-restore', 'iptables-legacy-restore', 'unshare', 'python3', 'flock', 'conntrack', 'nft', 'ipset', 'ebtables-nft'].filter((c) => !has(c)),
];

export const CAN_USE_NETNS = NETNS_MISSING.length === 0;

if (!CAN_USE_NETNS) {
  process.stderr.write(`\n*** vif-guard: network-namespace tests SKIPPED (missing: ${NETNS_MISSING.join(', ')}). Run as root after .ci/run's apt-get step. ***\n\n`);
}

export const VARIANTS = ['nft', 'legacy'] as const;
export type Variant = (typeof VARIANTS)[number];
/** Every backend: the nftables one (the default where nf_tables exists) and both iptables variants. */
export const BACKENDS = ['nftables', 'nft', 'legacy'] as const;
export type Backend = (typeof BACKENDS)[number];
/** The iptables variant a backend's leftovers and foreign rules are read with. */
export const iptablesOf = (backend: Backend): Variant => (backend === 'nftables' ? 'nft' : backend);
/** How tests name a backend: `nftables`, `iptables-nft`, `iptables-legacy`. */
export const backendName = (backend: Backend): string => (backend === 'nftables' ? 'nftables' : `iptables-${backend}`);
