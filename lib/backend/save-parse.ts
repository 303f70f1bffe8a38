/** One table of `iptables-save` output: chains in order with their rules as canonical text. */
export interface Counter {
  readonly packets: number;
  readonly bytes: number;
}

export interface LiveChain {
  /** Built-in chains have a policy; user chains have `-`. */
  readonly policy: string;
  readonly rules: string[];
  /** Per rule, when the save was made with -c. */
  readonly counters: (Counter | undefined)[];
}

export interface LiveTable {
  readonly table: string;
  readonly chains: Map<string, LiveChain>;
}

const COUNTER = /^\[(\d+):(\d+)\] /;

/**
 * Parse one table of `iptables-save [-c]` (both variants print the same text); comment lines are
 * ignored. `iptables -S` lines (`-P chain policy`, `-N chain`) are read as the chain headers they are.
 */
export function parseSave(text: string, table: string): LiveTable {
  const chains = new Map<string, LiveChain>();
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
    if (line.startsWith(':') || line.startsWith('-P ') || line.startsWith('-N ')) {
      const [name = '', policy = '-'] = line.slice(line.startsWith(':') ? 1 : 3).split(' ');
      chains.set(name, { policy, rules: [], counters: [] });
      continue;
    }
    const counter = COUNTER.exec(line);
    const rule = counter ? line.slice(counter[0].length) : line;
    if (rule.startsWith('-A ')) {
      const rest = rule.slice(3);
      const space = rest.indexOf(' ');
      const chain = space < 0 ? rest : rest.slice(0, space);
      const body = space < 0 ? '' : rest.slice(space + 1);
      const entry = chains.get(chain) ?? { policy: '-', rules: [], counters: [] };
      entry.rules.push(body);
      entry.counters.push(counter ? { packets: Number(counter[1]), bytes: Number(counter[2]) } : undefined);
      chains.set(chain, entry);
    }
  }
  return { table, chains };
}
