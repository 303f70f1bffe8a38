import { VifGuardError, invalid, type Origin } from '../errors.js';
import { isGuestName, parseIfname, parseMac } from '../guest/validate.js';

export type HotplugAction = 'up' | 'down';

/** A vif or tap event, from the hook's explicit arguments or from libxl's own argv and environment. */
export interface HotplugRequest {
  readonly action: HotplugAction;
  readonly typeIf: 'vif' | 'tap';
  /** Interface name as the hotplug script knows it (renamed vifname, or -emu tap); may need xenstore. */
  readonly dev: string | undefined;
  /** `vif<domid>.<devid>` from libxl, used when dev is unknown. */
  readonly vif: string | undefined;
  readonly xenbusPath: string | undefined;
  /** `ip` as the stock script saw it (xenstore overrides it, as in vif-common.sh). */
  readonly ip: string | undefined;
  readonly bridge: string | undefined;
  /** Guest name when the caller knows it (xenstore's /local/domain/<domid>/name otherwise). */
  readonly guest?: string | undefined;
  /** Guest MAC when the caller knows it (xenstore's mac node otherwise). */
  readonly mac?: string | undefined;
}

const XENBUS_PATH = /^(\/local\/domain\/0\/)?backend\/vif\/\d{1,5}\/\d{1,4}$/;

function validateXenbusPath(value: string, origin: Origin): string {
  if (!XENBUS_PATH.test(value)) throw invalid('XENBUS_PATH', 'backend/vif/<domid>/<devid>', value, origin);
  return value;
}

function actionOf(command: string, origin: Origin): HotplugAction {
  if (command === 'online' || command === 'add') return 'up';
  if (command === 'offline' || command === 'remove') return 'down';
  throw invalid('command', 'online, offline, add or remove', command, origin);
}

/**
 * libxl's contract (xen-hotplug.md 2.2): `online|offline type_if=vif` or `add|remove type_if=tap`,
 * with vif, INTERFACE and XENBUS_PATH in the environment.
 */
export function parseLibxlInvocation(argv: readonly string[], env: NodeJS.ProcessEnv): HotplugRequest {
  const origin = { source: 'hotplug arguments' };
  const [command = '', ...rest] = argv;
  const words = new Map<string, string>();
  for (const word of rest) {
    const eq = word.indexOf('=');
    if (eq > 0) words.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const typeIfText = words.get('type_if') ?? 'vif';
  if (typeIfText !== 'vif' && typeIfText !== 'tap') throw invalid('type_if', 'vif or tap', typeIfText, origin);
  const envOrigin = { source: 'hotplug environment' };
  const vif = env.vif ? parseIfname(env.vif, 'vif', envOrigin) : undefined;
  const dev = typeIfText === 'tap' ? (env.INTERFACE ? parseIfname(env.INTERFACE, 'INTERFACE', envOrigin) : undefined) : undefined;
  return {
    action: actionOf(command, origin),
    typeIf: typeIfText,
    dev,
    vif,
    xenbusPath: env.XENBUS_PATH ? validateXenbusPath(env.XENBUS_PATH, envOrigin) : undefined,
    ip: words.get('ip'),
    bridge: words.get('bridge') ? parseIfname(words.get('bridge') ?? '', 'bridge', origin) : undefined,
  };
}

/** The hook's own arguments: `--command online --dev vm01 --type-if vif --ip "..." --bridge xenbr0 --xenbus-path ...`. */
export function parseHookArguments(action: HotplugAction, argv: readonly string[], env: NodeJS.ProcessEnv): HotplugRequest {
  const origin = { source: 'vif-guard hook arguments' };
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i] ?? '';
    if (!key.startsWith('--')) throw invalid('argument', 'an option such as --dev', key, origin);
    const eq = key.indexOf('=');
    if (eq > 0) {
      options.set(key.slice(2, eq), key.slice(eq + 1));
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined) throw new VifGuardError('INVALID_INPUT', `option ${key} needs a value (${origin.source})`);
    options.set(key.slice(2), value);
    i += 1;
  }
  const known = new Set(['dev', 'type-if', 'ip', 'bridge', 'xenbus-path', 'command', 'guest', 'mac']);
  for (const key of options.keys()) if (!known.has(key)) throw invalid('option', `one of --${[...known].join(', --')}`, `--${key}`, origin);
  const command = options.get('command');
  if (command !== undefined && actionOf(command, origin) !== action) {
    throw new VifGuardError('INVALID_INPUT', `--command ${command} does not match this hook (vif-${action})`);
  }
  const typeIf = options.get('type-if') ?? 'vif';
  if (typeIf !== 'vif' && typeIf !== 'tap') throw invalid('type-if', 'vif or tap', typeIf, origin);
  const dev = options.get('dev') || undefined;
  const bridge = options.get('bridge') || undefined;
  const xenbusPath = options.get('xenbus-path') || env.XENBUS_PATH || undefined;
  const guest = options.get('guest') || undefined;
  if (guest !== undefined && !isGuestName(guest)) throw invalid('guest', 'a domain name of letters, digits and _.:-', guest, origin);
  return {
    action,
    typeIf,
    dev: dev === undefined ? undefined : parseIfname(dev, 'dev', origin),
    vif: env.vif ? parseIfname(env.vif, 'vif', { source: 'hotplug environment' }) : undefined,
    xenbusPath: xenbusPath === undefined ? undefined : validateXenbusPath(xenbusPath, origin),
    ip: options.get('ip'),
    bridge: bridge === undefined ? undefined : parseIfname(bridge, 'bridge', origin),
    ...(guest === undefined ? {} : { guest }),
    ...(options.get('mac') ? { mac: parseMac(options.get('mac') ?? '', origin) } : {}),
  };
}
