import { readFileSync } from 'node:fs';
import { parse } from 'ini';
import { VifGuardError, quoteValue } from '../errors.js';
import { DEFAULT_SETTINGS, type Settings } from './settings.js';

export const DEFAULT_CONFIG_PATH = '/etc/vif-guard/vif-guard.conf';

type Parser = (value: string) => unknown;

const yesNo: Parser = (value) => {
  if (/^(yes|true|on|1)$/i.test(value)) return true;
  if (/^(no|false|off|0)$/i.test(value)) return false;
  return undefined;
};
const oneOf = (...choices: string[]): Parser => (value) => (choices.includes(value) ? value : undefined);
const integer = (min: number, max: number): Parser => (value) => {
  if (!/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return n >= min && n <= max ? n : undefined;
};
// nft ethertype names, or a hex number; validated because they end up in an nft script.
const ETHERTYPE_NAMES = new Set(['vlan', '8021ad', '8021q', 'rarp', 'lldp', 'pppoe-discovery', 'pppoe-session', 'mpls-uc', 'mpls-mc', 'ip', 'arp', 'ip6']);
const ethertypes: Parser = (value) => {
  const items = value.split(/[\s,]+/).filter(Boolean);
  if (!items.every((item) => ETHERTYPE_NAMES.has(item) || /^0x[0-9a-fA-F]{4}$/.test(item))) return undefined;
  return items.filter((item) => !['ip', 'arp', 'ip6'].includes(item));
};
// `nft` and `legacy` (the iptables variants) are kept from before the nftables backend existed.
const BACKENDS: Record<string, Settings['backend']> = { auto: 'auto', nftables: 'nftables', iptables: 'iptables', 'iptables-nft': 'nft', nft: 'nft', 'iptables-legacy': 'legacy', legacy: 'legacy' };
const backendValue: Parser = (value) => BACKENDS[value];
const absolutePath: Parser = (value) => (/^\/[^\0\n]*$/.test(value) ? value : undefined);

const KEYS: Record<string, { field: keyof Settings; parse: Parser; expected: string }> = {
  backend: { field: 'backend', parse: backendValue, expected: 'auto, nftables, iptables, iptables-nft or iptables-legacy' },
  notrack: { field: 'notrack', parse: yesNo, expected: 'yes or no' },
  unaddressed: { field: 'unaddressed', parse: oneOf('allow', 'block'), expected: 'allow or block' },
  log: { field: 'log', parse: yesNo, expected: 'yes or no' },
  log_per_minute: { field: 'logPerMinute', parse: integer(1, 59), expected: 'a whole number from 1 to 59' },
  log_burst: { field: 'logBurst', parse: integer(1, 1000), expected: 'a whole number from 1 to 1000' },
  layer2: { field: 'layer2', parse: yesNo, expected: 'yes or no' },
  layer2_tool: { field: 'layer2Tool', parse: oneOf('auto', 'nftables', 'ebtables'), expected: 'auto, nftables or ebtables' },
  extra_ethertypes: { field: 'extraEthertypes', parse: ethertypes, expected: 'ethertype names (vlan, 8021ad, lldp, rarp, ...) or 0xNNNN, separated by spaces' },
  lock_timeout: { field: 'lockTimeout', parse: integer(1, 35), expected: 'seconds from 1 to 35 (libxl kills hooks at 40)' },
  xen_config_dir: { field: 'xenConfigDir', parse: absolutePath, expected: 'an absolute path' },
  xen_scripts_dir: { field: 'xenScriptsDir', parse: absolutePath, expected: 'an absolute path' },
  xl_conf: { field: 'xlConf', parse: absolutePath, expected: 'an absolute path' },
  vz_conf: { field: 'vzConf', parse: absolutePath, expected: 'an absolute path' },
  vz_conf_dir: { field: 'vzConfDir', parse: absolutePath, expected: 'an absolute path' },
  containers_conf: { field: 'containersConf', parse: absolutePath, expected: 'an absolute path' },
  modules_load_file: { field: 'modulesLoadFile', parse: absolutePath, expected: 'an absolute path' },
  vznet_conf: { field: 'vznetConf', parse: absolutePath, expected: 'an absolute path' },
};

const SECTIONS = ['general', 'xen', 'openvz'];

/** Parse vif-guard.conf text. Unknown keys and bad values are errors naming the key; nothing is guessed. */
export function parseSettings(text: string, path: string): Settings {
  const data = parse(text) as Record<string, unknown>;
  const settings: Record<string, unknown> = { ...DEFAULT_SETTINGS };
  for (const [section, body] of Object.entries(data)) {
    if (typeof body !== 'object' || body === null) {
      throw new VifGuardError('INVALID_INPUT', `${path}: key \`${section}\` must be inside a [general], [xen] or [openvz] section`);
    }
    if (!SECTIONS.includes(section)) {
      throw new VifGuardError('INVALID_INPUT', `${path}: unknown section [${section}] (expected [general], [xen] or [openvz])`);
    }
    for (const [key, raw] of Object.entries(body as Record<string, unknown>)) {
      // Own keys only: `valueOf` or `constructor` must be unknown keys, not Object.prototype's.
      const spec = Object.hasOwn(KEYS, key) ? KEYS[key] : undefined;
      if (!spec) throw new VifGuardError('INVALID_INPUT', `${path}: unknown key \`${key}\` in [${section}] (known: ${Object.keys(KEYS).join(', ')})`);
      if (typeof raw !== 'string') throw new VifGuardError('INVALID_INPUT', `${path}: \`${key}\` in [${section}] needs a value: \`${key} = ...\` (and section names have no dots)`);
      const value = spec.parse(raw.trim());
      if (value === undefined) throw new VifGuardError('INVALID_INPUT', `${path}: \`${key}\` must be ${spec.expected}, got ${quoteValue(raw)}`);
      settings[spec.field] = value;
    }
  }
  return settings as unknown as Settings;
}

/** The settings in force: the config file when it exists, the defaults otherwise. */
export function loadSettings(path = process.env.VIF_GUARD_CONFIG ?? DEFAULT_CONFIG_PATH): Settings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return DEFAULT_SETTINGS;
    throw new VifGuardError('INVALID_INPUT', `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  return parseSettings(text, path);
}
