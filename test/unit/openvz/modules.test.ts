import { describe, expect, it } from 'vitest';
import { maskOf, maskOfTokens, modeFor, MODULE_TABLE, NETFILTER_MODES, renderSavedIptables, resolveToken, tokensOfMask, VE_IP_DEFAULT, withoutTokens } from '../../../lib/openvz/modules.js';

// openvz.md 3.1: token, bit, mask (dependencies included), in vzctl's table order.
const TABLE: [string, number, number][] = [
  ['ip_tables', 0, 0x00000001], ['iptable_filter', 1, 0x00000003], ['iptable_mangle', 2, 0x00000005], ['ipt_limit', 3, 0x00000009],
  ['ipt_multiport', 4, 0x00000011], ['ipt_tos', 5, 0x00000021], ['ipt_TOS', 6, 0x00000041], ['ipt_REJECT', 7, 0x00000081],
  ['ipt_TCPMSS', 8, 0x00000101], ['ipt_tcpmss', 9, 0x00000201], ['ipt_ttl', 10, 0x00000401], ['ipt_LOG', 11, 0x00000801],
  ['ipt_length', 12, 0x00001001], ['ip_conntrack', 14, 0x00004001], ['ip_conntrack_ftp', 15, 0x0000c001], ['ip_conntrack_irc', 16, 0x00014001],
  ['ipt_conntrack', 17, 0x00024001], ['ipt_state', 18, 0x00044001], ['ipt_helper', 19, 0x00084001], ['iptable_nat', 20, 0x00104001],
  ['ip_nat_ftp', 21, 0x0030c001], ['ip_nat_irc', 22, 0x00514001], ['ipt_REDIRECT', 23, 0x00904001], ['xt_mac', 25, 0x02000001],
  ['ipt_recent', 31, 0x80000001], ['ipt_owner', 24, 0x01000001],
];

describe('vzctl module table', () => {
  it('has the 26 tokens in vzctl order', () => {
    expect(MODULE_TABLE.map((row) => row.token)).toEqual(TABLE.map(([token]) => token));
  });
  it.each(TABLE)('%s: bit %i, mask %#x', (token, bit, mask) => {
    expect(MODULE_TABLE.find((row) => row.token === token)?.bit).toBe(bit);
    expect(maskOf(token)).toBe(BigInt(mask));
  });

  // openvz.md 3.2, "Saved-string format".
  it.each([
    [['ipt_state'], 'IPTABLES="ip_tables ip_conntrack ipt_state "'],
    [['iptable_nat'], 'IPTABLES="ip_tables ip_conntrack iptable_nat "'],
    [['ipt_recent'], 'IPTABLES="ip_tables ipt_recent "'],
    [['ip_nat_ftp'], 'IPTABLES="ip_tables ip_conntrack ip_conntrack_ftp iptable_nat ip_nat_ftp "'],
    [
      ['ipt_REJECT', 'ipt_tos', 'ipt_limit', 'ipt_multiport', 'iptable_filter', 'iptable_mangle', 'ipt_TCPMSS', 'ipt_tcpmss', 'ipt_ttl', 'ipt_length'],
      'IPTABLES="ip_tables iptable_filter iptable_mangle ipt_limit ipt_multiport ipt_tos ipt_REJECT ipt_TCPMSS ipt_tcpmss ipt_ttl ipt_length "',
    ],
  ])('%j is saved as %s', (tokens, saved) => {
    expect(renderSavedIptables(maskOfTokens(tokens))).toBe(saved);
  });

  it('VE_IP_DEFAULT 0x17bf is the old vz.conf default list', () => {
    expect(tokensOfMask(VE_IP_DEFAULT)).toEqual(['ip_tables', 'iptable_filter', 'iptable_mangle', 'ipt_limit', 'ipt_multiport', 'ipt_tos', 'ipt_REJECT', 'ipt_TCPMSS', 'ipt_tcpmss', 'ipt_ttl', 'ipt_length']);
  });

  it('NETFILTER modes and which token sets equal them', () => {
    expect(NETFILTER_MODES.stateless).toBe(0x1c000007n);
    expect(NETFILTER_MODES.stateful).toBe(0x5c01c007n);
    expect(modeFor(maskOfTokens(['iptable_filter', 'iptable_mangle']))).toBe('stateless');
    expect(modeFor(maskOfTokens(['iptable_filter', 'iptable_mangle', 'ip_conntrack_ftp', 'ip_conntrack_irc']))).toBe('stateful');
    expect(modeFor(maskOfTokens(['iptable_filter', 'ipt_recent']))).toBeUndefined();
    expect(modeFor(0n)).toBe('disabled');
  });

  it.each([
    ['recent', 'ipt_recent'], ['xt_recent', 'ipt_recent'], ['state', 'ipt_state'], ['xt_state', 'ipt_state'], ['conntrack', 'ip_conntrack'],
    ['nf_conntrack', 'ip_conntrack'], ['nat', 'iptable_nat'], ['filter', 'iptable_filter'], ['MASQUERADE', 'iptable_nat'], ['ipt_state', 'ipt_state'],
    ['multiport', 'ipt_multiport'], ['mac', 'xt_mac'], ['owner', 'ipt_owner'],
  ])('%s means %s', (name, token) => {
    expect(resolveToken(name)).toBe(token);
  });

  it.each(['xt_bogus', 'ipt_MASQUERADE2', '', 'ip6_tables;reboot'])('rejects %j listing the valid names', (name) => {
    expect(() => resolveToken(name)).toThrow(/unknown iptables module .*valid names are ip_tables, iptable_filter/);
  });

  it('denying a token removes what depends on it', () => {
    const mask = maskOfTokens(['iptable_filter', 'ipt_state', 'iptable_nat', 'ipt_recent']);
    expect(tokensOfMask(withoutTokens(mask, ['ip_conntrack']))).toEqual(['ip_tables', 'iptable_filter', 'ipt_recent']);
    expect(tokensOfMask(withoutTokens(mask, ['ipt_recent']))).toEqual(['ip_tables', 'iptable_filter', 'ip_conntrack', 'ipt_state', 'iptable_nat']);
  });
});
