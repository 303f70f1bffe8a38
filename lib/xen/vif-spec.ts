import { VifGuardError, invalid, quoteValue, type Origin } from '../errors.js';
import { isGuestName, parseAddressList, parseIfname, parseMac, type GuestAddress } from '../guest/validate.js';
import type { DomuConfig } from './domu-config.js';

/** One `vif = [...]` entry, validated. */
export interface VifSpec {
  readonly index: number;
  readonly vifname: string | undefined;
  readonly mac: string | undefined;
  readonly bridge: string | undefined;
  readonly addresses: readonly GuestAddress[];
  readonly script: string | undefined;
  readonly origin: Origin;
}

// xl-network-configuration(5) and xm's create.py; an unknown key is an error, since a typo such as
// `ipaddr=` would otherwise leave the guest unprotected without a word.
const KNOWN_KEYS = new Set([
  'mac', 'bridge', 'gatewaydev', 'netdev', 'type', 'model', 'vifname', 'script', 'ip', 'backend', 'rate',
  'devid', 'mtu', 'vlan', 'trusted', 'untrusted', 'forwarddev', 'accel', 'policy', 'label', 'uuid',
]);

/** Split a vifspec as xl does: on commas, leading spaces skipped; `ip` keeps its spaces. */
export function parseVifSpec(spec: string, index: number, origin: Origin): VifSpec {
  const values = new Map<string, string>();
  for (const rawPart of spec.split(',')) {
    const part = rawPart.replace(/^[ \t]+/, '').replace(/[ \t]+$/, '');
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (!KNOWN_KEYS.has(key) && !key.startsWith('colo_')) {
      throw new VifGuardError('INVALID_INPUT', `unknown vif setting ${quoteValue(key)} in vif ${index} (${origin.source}${origin.line ? ` line ${origin.line}` : ''})`);
    }
    values.set(key, eq < 0 ? '' : part.slice(eq + 1));
  }
  const get = (key: string) => {
    const value = values.get(key);
    return value === undefined || value === '' ? undefined : value;
  };
  const script = get('script');
  if (script !== undefined && !/^[A-Za-z0-9_./-]{1,255}$/.test(script)) throw invalid('script', 'a script name or path', script, origin);
  return {
    index,
    vifname: get('vifname') === undefined ? undefined : parseIfname(get('vifname') ?? '', 'vifname', origin),
    mac: get('mac') === undefined ? undefined : parseMac(get('mac') ?? '', origin),
    bridge: get('bridge') === undefined ? undefined : parseIfname(get('bridge') ?? '', 'bridge', origin),
    addresses: parseAddressList(values.get('ip') ?? '', origin),
    script,
    origin,
  };
}

export interface DomuNetwork {
  readonly file: string;
  readonly name: string | undefined;
  readonly vifs: readonly VifSpec[];
}

/** The guest name and vifs of a parsed domU config. */
export function buildDomuNetwork(config: DomuConfig, file: string): DomuNetwork {
  const nameValue = config.get('name');
  let name: string | undefined;
  if (nameValue) {
    if (nameValue.kind !== 'string' || !isGuestName(nameValue.value)) {
      throw invalid('name', 'a domain name of letters, digits and _.:-', nameValue.kind === 'string' ? nameValue.value : nameValue.kind, { source: file, line: nameValue.line });
    }
    name = nameValue.value;
  }
  const vifValue = config.get('vif');
  if (!vifValue) return { file, name, vifs: [] };
  if (vifValue.kind !== 'list') throw new VifGuardError('INVALID_INPUT', `${file} line ${vifValue.line}: vif must be a list, e.g. vif = [ 'mac=...,ip=...' ]`);
  const vifs = vifValue.items.map((item, index) => {
    if (item.kind !== 'string') throw new VifGuardError('INVALID_INPUT', `${file} line ${item.line}: each vif must be a quoted string`);
    return parseVifSpec(item.value, index, { source: file, line: item.line });
  });
  return { file, name, vifs };
}
