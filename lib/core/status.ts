import type { GuestPort } from '../guest/model.js';
import type { Settings } from '../config/settings.js';
import type { LiveTable, Counter } from '../backend/save-parse.js';
import { jumpsInPlace } from '../backend/diff.js';
import { renderRuleBody } from '../backend/render.js';
import { buildRuleset } from '../rules/build.js';
import { portInChain, portOfChain, portOutChain } from '../rules/names.js';
import { buildPortInChain, buildPortOutChain, isGuarded, parsePortComment } from '../rules/port.js';

export type PortState = 'protected' | 'unprotected' | 'drift' | 'no-addresses' | 'stale';

export interface PortStatus {
  readonly guest: string;
  readonly vif: string;
  readonly bridge: string | undefined;
  readonly addresses: string[];
  readonly mac: string | undefined;
  readonly state: PortState;
  /** Dropped from the guest: spoofed sources (and anything else not its own). */
  readonly spoofed: Counter;
  /** DHCP server replies the guest tried to send. */
  readonly dhcpServer: Counter;
  /** Dropped on the way to the guest: addressed to someone else. */
  readonly toGuest: Counter;
}

const ZERO: Counter = { packets: 0, bytes: 0 };
const COMMENT = /--comment "((?:[^"\\]|\\.)*)"/;

function counterOf(live: LiveTable, chain: string, pick: (body: string) => boolean): Counter {
  const entry = live.chains.get(chain);
  if (!entry) return ZERO;
  let packets = 0;
  let bytes = 0;
  entry.rules.forEach((body, i) => {
    if (!pick(body)) return;
    packets += entry.counters[i]?.packets ?? 0;
    bytes += entry.counters[i]?.bytes ?? 0;
  });
  return { packets, bytes };
}

function same(live: LiveTable, chain: string, rules: readonly (readonly string[])[]): boolean {
  const have = live.chains.get(chain)?.rules;
  return have !== undefined && have.length === rules.length && rules.every((rule, i) => renderRuleBody(rule) === have[i]);
}

/**
 * One row per port that should be protected or still has chains: its state against what sync would
 * build, and its drop counters (from `iptables-save -c`, so since the chain was last written).
 */
export function buildStatus(live: LiveTable, expected: readonly GuestPort[] | undefined, settings: Settings): PortStatus[] {
  const rows: PortStatus[] = [];
  const counters = (vif: string) => ({
    spoofed: counterOf(live, portInChain(vif), (body) => body.includes('--comment') && body.endsWith('-j DROP')),
    dhcpServer: counterOf(live, portInChain(vif), (body) => body.includes('--sport 67 --dport 68 -j DROP')),
    toGuest: counterOf(live, portOutChain(vif), (body) => body === '-j DROP'),
  });
  // Shared chains (dispatch, jumps) out of place mean every port may be bypassed.
  const sharedDrift = expected !== undefined && (() => {
    const desired = buildRuleset(expected, settings).tables[0];
    if (!desired) return false;
    const shared = desired.chains.filter((chain) => portOfChain(chain.name) === undefined && !chain.name.startsWith('vif-guard-o-'));
    const builtins = [...new Set(desired.jumps.map((jump) => jump.chain))];
    return !shared.every((chain) => same(live, chain.name, chain.rules)) || !builtins.every((builtin) => jumpsInPlace(live, desired.jumps, builtin));
  })();
  const known = new Set<string>();
  for (const port of expected ?? []) {
    known.add(port.ifname);
    const addresses = port.addresses.map((a) => a.cidr);
    if (!isGuarded(port, settings)) {
      rows.push({ guest: port.guest, vif: port.ifname, bridge: port.bridge, addresses, mac: port.mac, state: 'no-addresses', ...counters(port.ifname) });
      continue;
    }
    const inChain = buildPortInChain(port, settings);
    const outChain = buildPortOutChain(port, settings);
    const exists = live.chains.has(inChain.name);
    const state: PortState = !exists ? 'unprotected' : same(live, inChain.name, inChain.rules) && same(live, outChain.name, outChain.rules) && !sharedDrift ? 'protected' : 'drift';
    rows.push({ guest: port.guest, vif: port.ifname, bridge: port.bridge, addresses, mac: port.mac, state, ...counters(port.ifname) });
  }
  for (const [chain, entry] of live.chains) {
    const vif = portOfChain(chain);
    if (vif === undefined || known.has(vif)) continue;
    const comment = entry.rules.map((rule) => COMMENT.exec(rule)?.[1]).find((text) => text !== undefined);
    const meta = comment ? parsePortComment(comment.replace(/\\(.)/g, '$1')) : undefined;
    const addresses = entry.rules.flatMap((rule) => /^-s (\S+) -j RETURN$/.exec(rule)?.[1] ?? []);
    // Without an inventory (no hypervisor tools) the live chains are all there is to report.
    const state: PortState = expected === undefined ? 'protected' : 'stale';
    rows.push({ guest: meta?.guest ?? '-', vif, bridge: meta?.bridge, addresses, mac: meta?.mac, state, ...counters(vif) });
  }
  return rows.sort((a, b) => a.vif.localeCompare(b.vif));
}

const label = (value: string) => value.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));

/** node_exporter textfile format: one counter per port and reason, plus the port's state. */
export function renderPrometheus(rows: readonly PortStatus[]): string {
  const lines = [
    '# HELP vif_guard_dropped_packets_total Packets vif-guard dropped, per guest port and reason, since its chain was written.',
    '# TYPE vif_guard_dropped_packets_total counter',
  ];
  const bytes = [
    '# HELP vif_guard_dropped_bytes_total Bytes vif-guard dropped, per guest port and reason, since its chain was written.',
    '# TYPE vif_guard_dropped_bytes_total counter',
  ];
  const state = ['# HELP vif_guard_port_protected 1 when the port has exactly the rules sync would build.', '# TYPE vif_guard_port_protected gauge'];
  for (const row of rows) {
    const base = `guest="${label(row.guest)}",vif="${label(row.vif)}"`;
    for (const [reason, counter] of [['spoofed_source', row.spoofed], ['dhcp_server', row.dhcpServer], ['not_for_guest', row.toGuest]] as const) {
      lines.push(`vif_guard_dropped_packets_total{${base},reason="${reason}"} ${counter.packets}`);
      bytes.push(`vif_guard_dropped_bytes_total{${base},reason="${reason}"} ${counter.bytes}`);
    }
    state.push(`vif_guard_port_protected{${base},state="${row.state}"} ${row.state === 'protected' ? 1 : 0}`);
  }
  return `${[...lines, ...bytes, ...state].join('\n')}\n`;
}
