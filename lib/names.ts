/** How many names one message shows: journald cuts lines at 48 KB, and thousands of names help nobody. */
export const NAMES_SHOWN = 20;

/**
 * Names for one log line or check: all of them while there are few, else the first NAMES_SHOWN,
 * how many more and where to find the rest (`hint`).
 */
export function someOf(names: readonly string[], hint: string, separator = ' ', limit = NAMES_SHOWN): string {
  if (names.length <= limit) return names.join(separator);
  return `${names.slice(0, limit).join(separator)} and ${names.length - limit} more, ${names.length} in all (${hint})`;
}
