import { VifGuardError, invalid, quoteValue, type Origin } from '../errors.js';
import { parseIfname, parseMac } from '../guest/validate.js';
import { maskOfTokens, MODULE_TABLE, NETFILTER_MODES, type NetfilterMode } from './modules.js';

/** One `KEY="value"` line of a vzctl config, with where it was. */
export interface ConfigLine {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

/**
 * vzctl's parse_line (src/lib/util.c): `KEY="value"`, only double quotes stripped (up to the last
 * one), `#` comments and blank lines skipped. `KEY = "v"` makes the key "KEY " (an unknown key), as
 * in vzctl, so it never silently sets KEY.
 */
export function parseVzConfig(text: string): ConfigLine[] {
  const lines: ConfigLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const trimmed = raw.replace(/^[ \t]+/, '');
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const eq = trimmed.indexOf('=');
    if (eq <= 0) return;
    const key = trimmed.slice(0, eq);
    let value = trimmed.slice(eq + 1).replace(/[\r\n]+$/, '');
    if (value.startsWith('"')) {
      const last = value.lastIndexOf('"');
      value = last > 0 ? value.slice(1, last) : value.slice(1);
    }
    lines.push({ key, value, line: i + 1 });
  });
  return lines;
}

export interface IptablesSetting {
  /** OR of every IPTABLES= line (vzctl ORs repeated lines). */
  readonly mask: bigint;
  readonly lines: readonly number[];
}

/** IPTABLES= tokens: tab, space or comma separated; exact, case-sensitive names. Unknown ones are errors here. */
export function parseIptablesValue(value: string, origin: Origin): bigint {
  const tokens = value.split(/[\t ,]+/).filter(Boolean);
  for (const token of tokens) {
    if (!MODULE_TABLE.some((row) => row.token === token)) {
      throw invalid('IPTABLES', `vzctl module names (${MODULE_TABLE.slice(0, 4).map((r) => r.token).join(', ')}, ...)`, token, origin);
    }
  }
  return maskOfTokens(tokens);
}

export function iptablesSetting(lines: readonly ConfigLine[], file: string): IptablesSetting | undefined {
  const matches = lines.filter((line) => line.key === 'IPTABLES');
  if (matches.length === 0) return undefined;
  const mask = matches.reduce((all, line) => all | parseIptablesValue(line.value, { source: file, line: line.line }), 0n);
  return { mask, lines: matches.map((line) => line.line) };
}

export function netfilterSetting(lines: readonly ConfigLine[], file: string): NetfilterMode | undefined {
  const match = lines.filter((line) => line.key === 'NETFILTER').pop();
  if (!match) return undefined;
  if (!Object.hasOwn(NETFILTER_MODES, match.value)) throw invalid('NETFILTER', 'disabled, stateless, stateful or full', match.value, { source: file, line: match.line });
  return match.value as NetfilterMode;
}

export interface Veth {
  readonly ifname: string;
  readonly hostIfname: string;
  readonly mac: string | undefined;
  readonly bridge: string | undefined;
  readonly origin: Origin;
}

/** NETIF= (src/lib/config.c): `;` between interfaces, `,` between key=value fields; host_ifname defaults to veth<CTID>.<N>. */
export function parseNetif(value: string, ctid: string, origin: Origin): Veth[] {
  const veths: Veth[] = [];
  for (const [index, part] of value.split(';').filter((p) => p.trim() !== '').entries()) {
    const fields = new Map<string, string>();
    for (const field of part.split(',')) {
      if (field.trim() === '') continue;
      const eq = field.indexOf('=');
      if (eq <= 0) throw invalid('NETIF', 'key=value fields separated by commas', field, origin);
      fields.set(field.slice(0, eq).trim(), field.slice(eq + 1).trim());
    }
    const ifname = fields.get('ifname');
    if (!ifname) throw new VifGuardError('INVALID_INPUT', `NETIF interface ${index + 1} has no ifname= (${origin.source}${origin.line ? ` line ${origin.line}` : ''}): ${quoteValue(part)}`);
    const n = /(\d+)$/.exec(ifname)?.[1] ?? String(index);
    veths.push({
      ifname: parseIfname(ifname, 'NETIF ifname', origin),
      hostIfname: parseIfname(fields.get('host_ifname') || `veth${ctid}.${n}`, 'NETIF host_ifname', origin),
      mac: fields.get('mac') ? parseMac(fields.get('mac') ?? '', origin) : undefined,
      bridge: fields.get('bridge') ? parseIfname(fields.get('bridge') ?? '', 'NETIF bridge', origin) : undefined,
      origin,
    });
  }
  return veths;
}

export function validateCtid(ctid: string, origin: Origin): string {
  if (!/^[1-9]\d{0,9}$/.test(ctid)) throw invalid('CTID', 'a container number such as 101', ctid, origin);
  return ctid;
}

export interface ContainerConfig {
  readonly ctid: string;
  readonly file: string;
  readonly iptables: IptablesSetting | undefined;
  readonly netfilter: NetfilterMode | undefined;
  readonly veths: readonly Veth[];
  readonly lines: readonly ConfigLine[];
}

export function parseContainerConfig(text: string, ctid: string, file: string): ContainerConfig {
  const lines = parseVzConfig(text);
  const netif = lines.filter((line) => line.key === 'NETIF').pop();
  return {
    ctid,
    file,
    iptables: iptablesSetting(lines, file),
    netfilter: netfilterSetting(lines, file),
    veths: netif ? parseNetif(netif.value, ctid, { source: file, line: netif.line }) : [],
    lines,
  };
}

export interface Effective {
  readonly mask: bigint;
  readonly source: string;
}

/** vzctl's order (openvz.md 3.3): CT NETFILTER, CT IPTABLES, global IPTABLES, then VE_IP_DEFAULT. */
export function effectiveMask(ct: ContainerConfig, global: IptablesSetting | undefined, globalFile: string): Effective {
  if (ct.netfilter) return { mask: NETFILTER_MODES[ct.netfilter], source: `NETFILTER="${ct.netfilter}" in ${ct.file}` };
  if (ct.iptables) return { mask: ct.iptables.mask, source: `IPTABLES in ${ct.file}` };
  if (global) return { mask: global.mask, source: `IPTABLES in ${globalFile}` };
  return { mask: 0x17bfn, source: 'vzctl default (VE_IP_DEFAULT 0x17bf)' };
}
