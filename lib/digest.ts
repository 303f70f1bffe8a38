/**
 * A short change-detecting digest (48 bits, 12 hex digits) of a text: names the bridge table's
 * layout version and a port's blocklists. Not for security. FNV-1a, twice with different offsets:
 * hooks must start fast, and node:crypto alone costs them 10 ms of a 100 ms budget.
 */
export function shortDigest(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193 + 0x1000);
  }
  return ((a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0')).slice(0, 12);
}
