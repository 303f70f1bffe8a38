import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../../lib/config/settings.js';
import { buildEbtables, EB_CHAIN_MAX, EB_ROOT, ebPortChain, portOfEbChain } from '../../../lib/rules/ebtables.js';
import type { BridgePort } from '../../../lib/rules/types.js';

const port = (ifname: string, v4: string[] = ['10.0.0.5']): BridgePort => ({ ifname, mac: '00:16:3e:00:00:05', v4, v6: [], comment: '' });

describe('ebtables layer 2', () => {
  it('a port chain: MAC, then IP on to iptables, ARP sender MAC and IP (probes from 0.0.0.0 allowed), other ethertypes dropped, each drop logged first', () => {
    const chain = ebPortChain(port('vif3.0', ['10.0.0.5', '10.1.0.0/24']), DEFAULT_SETTINGS);
    const log = (cls: string) => ['--limit', '6/minute', '--limit-burst', '10', '--log-level', 'warning', '--log-prefix', `vifg-${cls}:`, '-j', 'CONTINUE'];
    expect(chain.rules).toEqual([
      ['-s', '!', '00:16:3e:00:00:05', ...log('mac')],
      ['-s', '!', '00:16:3e:00:00:05', '-j', 'DROP'],
      ['-p', '0x0800', '-j', 'RETURN'],
      ['-p', '0x86dd', '-j', 'RETURN'],
      ['-p', '0x0806', '--arp-mac-src', '!', '00:16:3e:00:00:05', ...log('arp_mac')],
      ['-p', '0x0806', '--arp-mac-src', '!', '00:16:3e:00:00:05', '-j', 'DROP'],
      ['-p', '0x0806', '--arp-ip-src', '0.0.0.0', '-j', 'RETURN'],
      ['-p', '0x0806', '--arp-ip-src', '10.0.0.5', '-j', 'RETURN'],
      ['-p', '0x0806', '--arp-ip-src', '10.1.0.0/24', '-j', 'RETURN'],
      ['-p', '0x0806', ...log('arp_ip')],
      ['-p', '0x0806', '-j', 'DROP'],
      log('ethertype'),
      ['-j', 'DROP'],
    ]);
    expect(chain.name).toMatch(/^vgl2-p-vif3\.0-[0-9a-f]{6}$/);
    expect(portOfEbChain(chain.name)).toBe('vif3.0');
  });

  it('no MAC configured: no MAC checks; extra ethertypes by number; no log rules with log = no', () => {
    const chain = ebPortChain({ ...port('vif3.0', []), mac: undefined }, { ...DEFAULT_SETTINGS, log: false, extraEthertypes: ['vlan', '8021q', '0x88CC'] });
    expect(chain.rules).toEqual([
      ['-p', '0x0800', '-j', 'RETURN'],
      ['-p', '0x86dd', '-j', 'RETURN'],
      ['-p', '0x0806', '--arp-ip-src', '0.0.0.0', '-j', 'RETURN'],
      ['-p', '0x0806', '-j', 'DROP'],
      ['-p', '0x8100', '-j', 'RETURN'],
      ['-p', '0x88cc', '-j', 'RETURN'],
      ['-j', 'DROP'],
    ]);
  });

  it('a chain name changes with its rules, and fits ebtables\' 31 characters for a 15-character interface name', () => {
    const a = ebPortChain(port('vif12345.12345'), DEFAULT_SETTINGS).name;
    const b = ebPortChain(port('vif12345.12345', ['10.0.0.6']), DEFAULT_SETTINGS).name;
    expect(a).not.toBe(b);
    expect(a.length).toBeLessThanOrEqual(EB_CHAIN_MAX);
    expect(portOfEbChain(a)).toBe('vif12345.12345');
  });

  it('ports are reached through -i prefix+ chains, not a list in the root', () => {
    const names = Array.from({ length: 200 }, (_, i) => `vif${i + 1}.0`);
    const chains = buildEbtables(names.map((name) => port(name)), DEFAULT_SETTINGS);
    const root = chains.find((chain) => chain.name === EB_ROOT);
    expect(root?.rules.length).toBeLessThanOrEqual(10);
    expect(root?.rules.every((rule) => rule[0] === '-i' && rule[1]?.endsWith('+'))).toBe(true);
    expect(chains.filter((chain) => chain.name.startsWith('vgl2-p-'))).toHaveLength(200);
    expect(chains.every((chain) => chain.name.length <= EB_CHAIN_MAX)).toBe(true);
    expect(buildEbtables([], DEFAULT_SETTINGS)).toEqual([]);
  });
});
