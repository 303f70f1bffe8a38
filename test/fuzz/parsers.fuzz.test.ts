import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { VifGuardError } from '../../lib/errors.js';
import { parseAddress, parseAddressList, parseIfname, parseMac } from '../../lib/guest/validate.js';
import { parseDomuConfig } from '../../lib/xen/domu-config.js';
import { buildDomuNetwork, parseVifSpec } from '../../lib/xen/vif-spec.js';
import { parseHookArguments, parseLibxlInvocation } from '../../lib/xen/hotplug.js';
import { parseSettings } from '../../lib/config/load.js';
import { parseContainerConfig, parseNetif, parseVzConfig } from '../../lib/openvz/config.js';
import { parseContainerAddresses } from '../../lib/openvz/addresses.js';
import { resolveToken } from '../../lib/openvz/modules.js';
import { tokensForRule } from '../../lib/openvz/check.js';
import { parseSave } from '../../lib/backend/save-parse.js';
import { renderRuleBody } from '../../lib/backend/render.js';
import { portComment, parsePortComment } from '../../lib/rules/port.js';
import { parseZone } from '../../lib/blocklist/zone.js';
import { ipv4ToInt, parseBlockPrefix, parseIpv4 } from '../../lib/guest/validate.js';
import { isIPv4 } from 'node:net';
import { bridgePort, parsePortComment as parseBridgeComment } from '../../lib/rules/bridge.js';

const origin = { source: 'fuzz' };
const RUNS = { numRuns: 2000 };

/** A parser may return or throw a VifGuardError with a one-line message; anything else is a bug. */
function safely<T>(fn: () => T): T | VifGuardError {
  try {
    return fn();
  } catch (error) {
    if (!(error instanceof VifGuardError)) throw error;
    expect(error.shortMessage).not.toMatch(/[\n\r]/);
    expect(error.shortMessage.length).toBeLessThan(600);
    return error;
  }
}

// Strings biased towards what breaks parsers: separators, quotes, shell and iptables syntax, controls.
const hostileChar = fc.constantFrom(...' \t\n\r\0,;=:/.-_+*"\'\\`$()[]{}#%!|&<>~^?@0123456789abcdefABCDEF'.split(''), 'é', '１', '\u202e', '😀');
// Object.prototype's names, which a lookup on a plain object would find.
const protoNames = fc.constantFrom('valueOf', 'constructor', 'toString', '__proto__', 'hasOwnProperty', 'isPrototypeOf', '-t constructor', '-m toString');
const hostile = fc.oneof(protoNames, fc.string({ maxLength: 80 }), fc.stringOf(hostileChar, { maxLength: 80 }), fc.fullUnicodeString({ maxLength: 40 }));

describe('every parser returns valid data or a one-line VifGuardError, whatever it is given', () => {
  it('addresses: anything accepted is canonical and round-trips', () => {
    fc.assert(
      fc.property(hostile, (text) => {
        const result = safely(() => parseAddress(text, origin));
        if (result instanceof VifGuardError) return;
        expect(parseAddress(result.cidr, origin).cidr).toBe(result.cidr);
        expect(result.cidr).toMatch(/^[0-9a-f.:]+\/\d{1,3}$/);
      }),
      RUNS,
    );
  });

  it('addresses from generated IPs: every real IPv4/IPv6 address and prefix is accepted', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 16, max: 128 }), (ip, prefix) => {
        const v4 = ip.includes('.') && !ip.includes(':');
        const text = `${ip}/${v4 ? Math.min(prefix, 32) : prefix}`;
        const result = safely(() => parseAddress(text, origin));
        // Refused only for being too wide, or not a unicast address a guest could own.
        if (result instanceof VifGuardError) expect(result.shortMessage).toMatch(/no wider than|a unicast IPv[46] address/);
      }),
      RUNS,
    );
  });

  it('address lists, MACs and interface names', () => {
    fc.assert(
      fc.property(hostile, (text) => {
        safely(() => parseAddressList(text, origin));
        const mac = safely(() => parseMac(text, origin));
        if (!(mac instanceof VifGuardError)) expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        const name = safely(() => parseIfname(text, 'x', origin));
        // Nothing that iptables, nft or a shell would read as syntax ever gets through.
        if (!(name instanceof VifGuardError)) expect(name).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/);
      }),
      RUNS,
    );
  });

  it('domU configs and vifspecs', () => {
    fc.assert(
      fc.property(hostile, hostile, (a, b) => {
        safely(() => buildDomuNetwork(parseDomuConfig(`name = "${a}"\nvif = [ '${b}' ]\n`, 'f'), 'f'));
        safely(() => buildDomuNetwork(parseDomuConfig(a, 'f'), 'f'));
        safely(() => parseVifSpec(`ip=${a},vifname=${b}`, 0, origin));
      }),
      RUNS,
    );
  });

  it('hook arguments and libxl invocations', () => {
    fc.assert(
      fc.property(fc.array(hostile, { maxLength: 8 }), hostile, (argv, value) => {
        safely(() => parseHookArguments('up', argv, {}));
        safely(() => parseHookArguments('up', ['--dev', value, '--ip', value, '--bridge', value], { XENBUS_PATH: value }));
        safely(() => parseLibxlInvocation(argv, { vif: value, XENBUS_PATH: value, INTERFACE: value }));
      }),
      RUNS,
    );
  });

  it('zone files: every line that is accepted is a canonical prefix; a bad line names its number', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(hostile, fc.ipV4().map((ip) => `${ip}/24`), fc.ipV6()), { maxLength: 20 }), (lines) => {
        const result = safely(() => parseZone(lines.join('\n'), 'zone'));
        if (result instanceof VifGuardError) {
          expect(result.shortMessage).toMatch(/^zone: (\d+ malformed line\(s\), nothing applied: line \d+|no prefixes|.*larger than)/);
          return;
        }
        for (const prefix of result) {
          expect(prefix.cidr).toMatch(/^[0-9a-f.:]+\/\d{1,3}$/);
          expect(parseBlockPrefix(prefix.cidr, origin).cidr).toBe(prefix.cidr);
        }
      }),
      RUNS,
    );
  });

  it('bridge records: a port\'s comment reads back as what it was built from', () => {
    fc.assert(
      fc.property(fc.array(fc.ipV4(), { minLength: 1, maxLength: 30 }), fc.constantFrom('web', 'db-01', 'x_y'), (ips, guest) => {
        const port = { ifname: 'vif9.0', guest, bridge: 'xenbr0', mac: '00:16:3e:00:00:09', addresses: parseAddressList(ips.filter((ip) => !/^(0|127|22[4-9]|2[3-5]\d)\./.test(ip)).join(' ') || '10.0.0.1', origin), key: 'xen:9/0' };
        const fields = parseBridgeComment(bridgePort(port).comment);
        expect(fields).toMatchObject({ guest, bridge: 'xenbr0', mac: port.mac, key: 'xen:9/0' });
        if (fields?.addresses) expect(fields.addresses).toEqual(port.addresses.map((address) => address.cidr));
      }),
      { numRuns: 300 },
    );
  });

  it('vif-guard.conf', () => {
    fc.assert(
      fc.property(hostile, hostile, (key, value) => {
        safely(() => parseSettings(`[general]\n${key} = ${value}\n`, 'f'));
        safely(() => parseSettings(key, 'f'));
      }),
      RUNS,
    );
  });

  it('vzctl configs, NETIF, containers.conf, module names and iptables rules', () => {
    fc.assert(
      fc.property(hostile, hostile, (a, b) => {
        parseVzConfig(a);
        const ct = safely(() => parseContainerConfig(`IPTABLES="${a}"\nNETIF="${b}"\nNETFILTER="${a}"\n`, '101', 'f'));
        if (!(ct instanceof VifGuardError) && ct.netfilter) expect(['disabled', 'stateless', 'stateful', 'full']).toContain(ct.netfilter);
        safely(() => parseNetif(a, '101', origin));
        safely(() => parseContainerAddresses(`[${a}]\n${b} = ${a}\n`, 'f'));
        const token = safely(() => resolveToken(a));
        if (!(token instanceof VifGuardError)) expect(token).toMatch(/^(ip|ipt|iptable|xt)_[A-Za-z_]+$/);
        const rule = safely(() => tokensForRule(a));
        if (!(rule instanceof VifGuardError)) for (const t of rule.tokens) expect(typeof t).toBe('string');
      }),
      RUNS,
    );
  });

  it('parseIpv4 accepts exactly what node\'s isIPv4 accepts, with the same value', () => {
    const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.stringMatching(/^0[0-9]{1,2}$/), fc.constant(''), fc.constant('+1'), fc.constant(' 1'));
    const quads = fc.array(octet, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.'));
    fc.assert(
      fc.property(fc.oneof(quads, hostile), (text) => {
        const value = parseIpv4(text);
        expect(value >= 0).toBe(isIPv4(text));
        if (value >= 0) expect(value).toBe(ipv4ToInt(text));
      }),
      RUNS,
    );
  });

  it('iptables-save text never throws, and our comments survive render and parse', () => {
    fc.assert(
      fc.property(hostile, (text) => {
        parseSave(text, 'filter');
        parseSave(`*filter\n${text}\nCOMMIT\n`, 'filter');
        parsePortComment(text);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/), (guest) => {
        const comment = portComment({ ifname: 'vif1.0', guest, bridge: 'xenbr0', mac: undefined, addresses: [] });
        const rendered = renderRuleBody(['-m', 'comment', '--comment', comment, '-j', 'DROP']);
        const parsed = parseSave(`*filter\n:x - [0:0]\n-A x ${rendered}\nCOMMIT\n`, 'filter').chains.get('x')?.rules[0] ?? '';
        const back = /--comment "((?:[^"\\]|\\.)*)"/.exec(parsed)?.[1]?.replace(/\\(.)/g, '$1') ?? '';
        expect(parsePortComment(back)?.guest).toBe(guest);
      }),
      RUNS,
    );
  });
});
