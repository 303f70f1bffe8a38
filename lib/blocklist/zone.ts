import { VifGuardError, quoteValue } from '../errors.js';
import { parseBlockPrefix, type GuestAddress } from '../guest/validate.js';

/** Bigger than any country zone (the largest are ~30,000 prefixes) by a wide margin. */
export const MAX_PREFIXES = 500_000;
const MAX_BYTES = 32 * 1024 * 1024;

/**
 * A zone file as ipdeny.com and most blocklist feeds publish them: one prefix per line; blank lines
 * and `#` or `;` comments allowed. Every malformed line is reported with its number and nothing is
 * returned, so a half-downloaded or HTML error page never becomes a partial blocklist.
 */
export function parseZone(text: string, source: string): GuestAddress[] {
  if (text.length > MAX_BYTES) throw new VifGuardError('INVALID_INPUT', `${source}: ${text.length} bytes is larger than a zone file can be (${MAX_BYTES}); nothing applied`);
  const prefixes: GuestAddress[] = [];
  const bad: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const raw = lines[i] ?? '';
    const line = (raw.includes('#') || raw.includes(';') ? raw.replace(/[#;].*$/, '') : raw).trim();
    if (line === '') continue;
    try {
      if (/\s/.test(line)) throw new Error('more than one value');
      prefixes.push(parseBlockPrefix(line, { source, line: i + 1 }));
    } catch {
      bad.push(`line ${i + 1}: ${quoteValue(line)}`);
    }
  }
  if (bad.length) {
    const shown = bad.slice(0, 5).join(', ');
    throw new VifGuardError('INVALID_INPUT', `${source}: ${bad.length} malformed line(s), nothing applied: ${shown}${bad.length > 5 ? `, and ${bad.length - 5} more` : ''} (expected one IPv4/IPv6 prefix per line)`, { details: bad.join('\n') });
  }
  if (prefixes.length === 0) throw new VifGuardError('INVALID_INPUT', `${source}: no prefixes in the file; nothing applied (to remove a blocklist, use vif-guard unblock)`);
  if (prefixes.length > MAX_PREFIXES) throw new VifGuardError('INVALID_INPUT', `${source}: ${prefixes.length} prefixes, more than the ${MAX_PREFIXES} vif-guard accepts per list; nothing applied`);
  return prefixes;
}
