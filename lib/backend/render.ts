import type { Rule } from '../rules/types.js';

// iptables' xtables_save_string(): these characters need no quotes; anything else is quoted and \ " ' escaped.
const NO_QUOTE = /^[A-Za-z0-9_-]+$/;
const STRING_OPTIONS = new Set(['--comment', '--log-prefix', '--hex-string']);

function renderString(value: string): string {
  if (NO_QUOTE.test(value)) return value;
  return `"${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

/** A rule's tokens exactly as `iptables-save` prints them after `-A <chain> `. */
export function renderRuleBody(rule: Rule): string {
  return rule.map((token, i) => (i > 0 && STRING_OPTIONS.has(rule[i - 1] ?? '') ? renderString(token) : token)).join(' ');
}
