import { describe, expect, it } from 'vitest';
import { renderRuleBody } from '../../../lib/backend/render.js';

describe('renderRuleBody', () => {
  it.each([
    [['-s', '10.0.0.1/32', '-j', 'RETURN'], '-s 10.0.0.1/32 -j RETURN'],
    [['-j', 'LOG', '--log-prefix', 'vifg-src:vm01 '], '-j LOG --log-prefix "vifg-src:vm01 "'],
    [['-m', 'comment', '--comment', 'nospace', '-j', 'DROP'], '-m comment --comment nospace -j DROP'],
    [['-m', 'comment', '--comment', 'guest=a.b-c', '-j', 'DROP'], '-m comment --comment "guest=a.b-c" -j DROP'],
    [['-m', 'comment', '--comment', 'say "hi"', '-j', 'DROP'], '-m comment --comment "say \\"hi\\"" -j DROP'],
  ])('%j renders as iptables-save prints it', (rule, text) => {
    expect(renderRuleBody(rule)).toBe(text);
  });
});
