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

/**
 * The part of containers.conf that can speak for one container: its `[CTID]` sections (however many
 * times they appear; ini merges them), and what precedes the first section (a stray key there fails
 * as it does for the whole file). Sections are cut where ini cuts them. A header whose name is
 * known only once ini unquotes it (quotes, backslashes) could name any container, and ini merges it
 * with every other header of that name, whose later values win: with one in the file, the whole
 * file is read (keeping that section alone made a hook fail on a value a later section replaced,
 * found by fuzzing). A hook reads this: the whole file of 4,000 containers cost a container's start
 * ~60 ms; sync reads it all.
 */
export function sectionsFor(text: string, ctid: string): string {
  const kept: string[] = [];
  let keep = true;
  for (const line of text.split(/[\r\n]+/)) {
    if (INI_SECTION.test(line)) {
      if (/["'\\]/.test(line)) return text;
      keep = line.includes(ctid);
    }
    if (keep) kept.push(line);
  }
  return kept.join('\n');
}

/** ini's own test for a section header line (ini/lib/ini.js, `decode`). */
const INI_SECTION = /^\[([^\]]*)\]\s*$/;

/** containers.conf, or only what it says about one container (`ctid`, see sectionsFor). */
export function loadContainerAddresses(file: string, ctid?: string): ContainerAddresses {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new VifGuardError('INVALID_INPUT', `cannot read ${file}: ${(error as Error).message}`);
  }
  return parseContainerAddresses(ctid === undefined ? text : sectionsFor(text, ctid), file);
}
