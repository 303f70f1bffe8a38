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

export interface TableSpec {
  readonly table: TableName;
  /** vif-guard's own chains, complete; any other chain named vif-guard* is stale. */
  readonly chains: readonly ChainSpec[];
  readonly jumps: readonly JumpSpec[];
}

/** Switched guest traffic that needs no conntrack entry (see backend/nft-notrack.ts). */
export interface NotrackSpec {
  readonly ports: readonly string[];
  readonly macs: readonly string[];
}

export interface Ruleset {
  readonly tables: readonly TableSpec[];
  /** undefined: vif-guard keeps no NOTRACK table (setting off, or no guarded port). */
  readonly notrack: NotrackSpec | undefined;
}

/** Every chain vif-guard creates starts with this; nothing else is ever written. */
export const CHAIN_PREFIX = 'vif-guard';

export function isOwnedChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}
