import { VifGuardError, quoteValue } from '../errors.js';

/** A value from an xl/xm domU config, with the line it started on. */
export type ConfigValue =
  | { readonly kind: 'string'; readonly value: string; readonly line: number }
  | { readonly kind: 'number'; readonly value: string; readonly line: number }
  | { readonly kind: 'list'; readonly items: readonly ConfigValue[]; readonly line: number };

export type DomuConfig = ReadonlyMap<string, ConfigValue>;

type Token =
  | { type: 'ident' | 'number' | 'string'; text: string; line: number }
  | { type: '=' | '[' | ']' | ',' | ';' | 'newline' | 'eof'; text: string; line: number };

function fail(file: string, line: number, what: string): never {
  throw new VifGuardError('INVALID_INPUT', `${file} line ${line}: ${what}`);
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'" };

function tokenize(text: string, file: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text.charAt(i);
    if (c === '\n') {
      tokens.push({ type: 'newline', text: c, line });
      line += 1;
      i += 1;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i += 1;
    } else if (c === '#') {
      while (i < text.length && text.charAt(i) !== '\n') i += 1;
    } else if (c === '\\' && text.charAt(i + 1) === '\n') {
      // xm configs are Python: a backslash continues the line.
      line += 1;
      i += 2;
    } else if ('=[],;'.includes(c)) {
      tokens.push({ type: c as '=' | '[' | ']' | ',' | ';', text: c, line });
      i += 1;
    } else if (c === '"' || c === "'") {
      const start = line;
      let value = '';
      i += 1;
      for (;;) {
        if (i >= text.length) fail(file, start, `unterminated string starting with ${c}`);
        const d = text.charAt(i);
        if (d === c) break;
        if (d === '\n') fail(file, start, 'a string may not span lines');
        if (d === '\\' && text.charAt(i + 1) === '\n') {
          // Python: backslash-newline inside a string continues it.
          line += 1;
          i += 2;
          continue;
        }
        if (d === '\\') {
          const e = text.charAt(i + 1);
          const mapped = Object.hasOwn(ESCAPES, e) ? ESCAPES[e] : undefined;
          if (mapped === undefined) fail(file, line, `unknown escape \\${e} in string`);
          value += mapped;
          i += 2;
          continue;
        }
        value += d;
        i += 1;
      }
      i += 1;
      tokens.push({ type: 'string', text: value, line: start });
    } else if (/[A-Za-z_]/.test(c)) {
      const match = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(text.slice(i))?.[0] ?? c;
      tokens.push({ type: 'ident', text: match, line });
      i += match.length;
    } else if (/[0-9-]/.test(c)) {
      const match = /^-?(0x[0-9a-fA-F]+|[0-9]+(\.[0-9]+)?)/.exec(text.slice(i))?.[0];
      if (!match) fail(file, line, `unexpected character ${quoteValue(c)}`);
      tokens.push({ type: 'number', text: match, line });
      i += match.length;
    } else {
      fail(file, line, `unexpected character ${quoteValue(c)}`);
    }
  }
  tokens.push({ type: 'eof', text: 'end of file', line });
  return tokens;
}

/**
 * Parse the subset of syntax that xl (libxlu) and xm (Python) configs share: `key = value` with
 * strings in either quote style, numbers, and lists that may span lines, with `#` comments.
 */
export function parseDomuConfig(text: string, file: string): DomuConfig {
  if (text.includes('\0')) fail(file, 1, 'file contains a NUL byte');
  const tokens = tokenize(text, file);
  let pos = 0;
  const peek = (): Token => tokens[pos] ?? { type: 'eof', text: '', line: 0 };
  const next = (): Token => tokens[pos++] ?? { type: 'eof', text: '', line: 0 };
  const skipNewlines = () => {
    while (peek().type === 'newline') pos += 1;
  };

  const parseValue = (): ConfigValue => {
    const token = next();
    if (token.type === 'string') return { kind: 'string', value: token.text, line: token.line };
    if (token.type === 'number') return { kind: 'number', value: token.text, line: token.line };
    if (token.type === '[') {
      const items: ConfigValue[] = [];
      skipNewlines();
      while (peek().type !== ']') {
        items.push(parseValue());
        skipNewlines();
        const sep = peek();
        if (sep.type === ',') {
          pos += 1;
          skipNewlines();
        } else if (sep.type !== ']') {
          fail(file, sep.line, `expected , or ] in list, got ${quoteValue(sep.text || sep.type)}`);
        }
      }
      pos += 1;
      return { kind: 'list', items, line: token.line };
    }
    return fail(file, token.line, `expected a string, number or [list], got ${quoteValue(token.text || token.type)}`);
  };

  const result = new Map<string, ConfigValue>();
  for (;;) {
    while (peek().type === 'newline' || peek().type === ';') pos += 1;
    const key = next();
    if (key.type === 'eof') break;
    if (key.type !== 'ident') fail(file, key.line, `expected a setting name, got ${quoteValue(key.text || key.type)}`);
    const eq = next();
    if (eq.type !== '=') fail(file, eq.line, `expected = after ${key.text}`);
    result.set(key.text, parseValue());
    const end = peek();
    if (end.type !== 'newline' && end.type !== ';' && end.type !== 'eof') {
      fail(file, end.line, `unexpected ${quoteValue(end.text)} after the value of ${key.text}`);
    }
  }
  return result;
}
