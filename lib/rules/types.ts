/** One rule as iptables-save tokens after `-A <chain>`. String arguments are kept unquoted; render quotes them. */
export type Rule = readonly string[];

export interface ChainSpec {
  readonly name: string;
  readonly rules: readonly Rule[];
}

/** A rule vif-guard keeps at position 1 of a built-in chain, so that no earlier ACCEPT can pre-empt it. */
export interface JumpSpec {
  readonly chain: string;
  readonly rule: Rule;
}

export type TableName = 'filter';
export type Family = 4 | 6;

export interface TableSpec {
  readonly table: TableName;
  /** iptables (4) or ip6tables (6): the same chain names live in both. */
  readonly family: Family;
  /** vif-guard's own chains, complete; any other chain named vif-guard* is stale. */
  readonly chains: readonly ChainSpec[];
  readonly jumps: readonly JumpSpec[];
}

/** Switched guest traffic that needs no conntrack entry (see backend/nft-bridge.ts). */
export interface NotrackSpec {
  readonly ports: readonly string[];
  readonly macs: readonly string[];
}

/** One guest's layer-2 checks (MAC, ARP, ethertypes) as nft rule texts for its chain in `bridge vif_guard`. */
export interface GuestL2Spec {
  readonly ifname: string;
  /** `g_<ifname>_<digest of the rules>`. */
  readonly chain: string;
  readonly rules: readonly string[];
}

/** vif-guard's nft bridge table; undefined when it needs none. */
export interface BridgeSpec {
  readonly notrack: NotrackSpec | undefined;
  readonly guests: readonly GuestL2Spec[];
}

export interface Ruleset {
  readonly tables: readonly TableSpec[];
  readonly bridge: BridgeSpec | undefined;
}

/** Every chain vif-guard creates starts with this; nothing else is ever written. */
export const CHAIN_PREFIX = 'vif-guard';

export function isOwnedChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}
