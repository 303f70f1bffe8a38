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

/** What one guarded port puts in `bridge vif_guard`: set elements only (see rules/bridge.ts). */
export interface BridgePort {
  readonly ifname: string;
  readonly mac: string | undefined;
  /** Sources it may use (and destinations it receives): nft element texts, prefixes collapsed. */
  readonly v4: readonly string[];
  /** Its configured IPv6 addresses and its MAC-derived link-local. */
  readonly v6: readonly string[];
  /** Its configuration, kept on its `guarded` element (rules/bridge.ts portComment). */
  readonly comment: string;
  /** Its blocklists (nftables backend); elements are built only when they must be written. */
  readonly block?: BridgeBlock | undefined;
}

/** A port's blocklists: a digest (kept in its comment) and, on demand, the set elements. */
export interface BridgeBlock {
  readonly digest: string;
  /** Rules of its two chains: to the guest (`bli_`), from it (`blo_`). */
  readonly rules: { readonly to: readonly string[]; readonly from: readonly string[] };
  readonly elements: () => { readonly in4: readonly string[]; readonly in6: readonly string[]; readonly out4: readonly string[]; readonly out6: readonly string[] };
}

/** vif-guard's nft bridge table; undefined when it needs none. */
export interface BridgeSpec {
  /** IP checks here too (the nftables backend), not only layer 2. */
  readonly ip: boolean;
  /** Digest of the fixed part; names the guarded set and the base chains. */
  readonly digest: string;
  /** Sets and chains, as lines of the table body. */
  readonly body: readonly string[];
  readonly ports: readonly BridgePort[];
}

export interface Ruleset {
  readonly tables: readonly TableSpec[];
  readonly bridge: BridgeSpec | undefined;
  /** The iptables backend's blocklists: one hash:net set per port, direction and family. */
  readonly ipsets?: readonly IpsetSpec[];
}

/** An ipset the rules reference: named after its port and its lists' digest, so new content is a new set. */
export interface IpsetSpec {
  readonly name: string;
  readonly family: Family;
  /** Elements (prefixes, IPv4 ranges), built only when the set must be created. */
  readonly elements: () => readonly string[];
}

/** Every chain vif-guard creates starts with this; nothing else is ever written. */
export const CHAIN_PREFIX = 'vif-guard';

export function isOwnedChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}
