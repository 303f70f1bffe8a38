import { readFileSync } from 'node:fs';
import { parse } from 'ini';
import { VifGuardError } from '../errors.js';
import { parseAddressList, parseIfname, type GuestAddress } from '../guest/validate.js';
import { validateCtid } from './config.js';

/** CTID -> container interface name -> addresses. */
export type ContainerAddresses = ReadonlyMap<string, ReadonlyMap<string, readonly GuestAddress[]>>;

/** containers.conf: `[CTID]` sections with `ifname = addresses`; every value validated, errors name file and key. */
export function parseContainerAddresses(text: string, file: string): ContainerAddresses {
  const data = parse(text) as Record<string, unknown>;
  const result = new Map<string, Map<string, GuestAddress[]>>();
  for (const [section, body] of Object.entries(data)) {
    if (typeof body !== 'object' || body === null) throw new VifGuardError('INVALID_INPUT', `${file}: \`${section}\` must be inside a [CTID] section`);
    const ctid = validateCtid(section, { source: `${file} [${section}]` });
    const perIf = new Map<string, GuestAddress[]>();
    for (const [ifname, value] of Object.entries(body as Record<string, unknown>)) {
      const origin = { source: `${file} [${section}] ${ifname}` };
      // ini reads `[1.0]` as nested sections; only `ifname = addresses` lines are meaningful here.
      if (typeof value !== 'string') throw new VifGuardError('INVALID_INPUT', `${file}: [${section}] must hold only \`ifname = addresses\` lines (section names are container IDs, without dots)`);
      perIf.set(parseIfname(ifname, 'interface name', origin), parseAddressList(String(value), origin));
    }
    result.set(ctid, perIf);
  }
  return result;
}

export function loadContainerAddresses(file: string): ContainerAddresses {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new VifGuardError('INVALID_INPUT', `cannot read ${file}: ${(error as Error).message}`);
  }
  return parseContainerAddresses(text, file);
}
