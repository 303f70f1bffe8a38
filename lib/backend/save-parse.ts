/** One table of `iptables-save` output: chains in order with their rules as canonical text. */
export interface LiveTable {
  readonly table: string;
  /** Built-in chains have a policy; user chains have `-`. */
  readonly chains: Map<string, { readonly policy: string; readonly rules: string[] }>;
}

/** Parse `iptables-save -t TABLE` (both variants print the same text); comments and counters are ignored. */
export function parseSave(text: string, table: string): LiveTable {
  const chains = new Map<string, { policy: string; rules: string[] }>();
  let inTable = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      inTable = line.slice(1).trim() === table;
      continue;
    }
    if (!inTable || line === '' || line.startsWith('#')) continue;
    if (line === 'COMMIT') {
      inTable = false;
      continue;
    }
    if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(' ');
      chains.set(name, { policy, rules: [] });
      continue;
    }
    if (line.startsWith('-A ')) {
      const rest = line.slice(3);
      const space = rest.indexOf(' ');
      const chain = space < 0 ? rest : rest.slice(0, space);
      const body = space < 0 ? '' : rest.slice(space + 1);
      const entry = chains.get(chain) ?? { policy: '-', rules: [] };
      entry.rules.push(body);
      chains.set(chain, entry);
    }
  }
  return { table, chains };
}
