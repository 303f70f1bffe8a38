import { describe, expect, it } from 'vitest';
import { FROM_GUEST_REASONS, TO_GUEST_REASONS, isProblem, selectRows, summaryLine, type PortState, type PortStatus, type Reason } from '../../../lib/core/status.js';
import { VifGuardError } from '../../../lib/errors.js';

const zero = { packets: 0, bytes: 0 };

function row(vif: string, guest: string, state: PortState, drops: Partial<Record<Reason, number>> = {}): PortStatus {
  const dropped = Object.fromEntries([...FROM_GUEST_REASONS, ...TO_GUEST_REASONS].map((reason) => [reason, { packets: drops[reason] ?? 0, bytes: (drops[reason] ?? 0) * 64 }])) as Record<Reason, typeof zero>;
  // As buildStatus fills it: spoofed is the sum of the from-guest reasons.
  const spoofed = FROM_GUEST_REASONS.reduce((sum, reason) => ({ packets: sum.packets + dropped[reason].packets, bytes: sum.bytes + dropped[reason].bytes }), zero);
  return { guest, vif, bridge: 'xenbr0', addresses: ['10.0.0.1/32'], mac: '00:16:3e:00:00:01', state, spoofed, dropped };
}

const rows = [
  row('vif1.0', 'web01', 'protected'),
  row('vif1.1', 'web01', 'protected', { source4: 3 }),
  row('vif2.0', 'db01', 'unprotected'),
  row('vif3.0', 'mail', 'protected'),
  row('vif4.0', 'old', 'stale'),
  row('vif5.0', 'lab', 'no-addresses'),
];

describe('status with thousands of guests', () => {
  it('a problem is any state but protected, or anything dropped from the guest', () => {
    expect(rows.filter(isProblem).map((r) => r.vif)).toEqual(['vif1.1', 'vif2.0', 'vif4.0', 'vif5.0']);
    expect(isProblem(row('vif9.0', 'x', 'protected', { routerAdvert: 1 }))).toBe(true);
  });

  it('frames dropped on the way to a guest (floods for other guests) do not make it a problem', () => {
    expect(isProblem(row('vif9.0', 'x', 'protected', { notForGuest4: 500, notForGuest6: 20 }))).toBe(false);
  });

  it('selects by vif or guest name, every vif of a guest, and the problems among them', () => {
    expect(selectRows(rows, [], false)).toHaveLength(rows.length);
    expect(selectRows(rows, ['web01', 'vif3.0'], false).map((r) => r.vif)).toEqual(['vif1.0', 'vif1.1', 'vif3.0']);
    expect(selectRows(rows, ['web01'], true).map((r) => r.vif)).toEqual(['vif1.1']);
    expect(selectRows(rows, [], true).map((r) => r.vif)).toEqual(['vif1.1', 'vif2.0', 'vif4.0', 'vif5.0']);
  });

  it('a name that matches no port is an error naming it, not an empty table', () => {
    expect(() => selectRows(rows, ['web01', 'web02'], false)).toThrow(VifGuardError);
    expect(() => selectRows(rows, ['web02'], false)).toThrow(/no guest port is named web02 /);
  });

  it('ends with a count per state and how many guests sent something that was dropped', () => {
    expect(summaryLine(rows, rows.length)).toBe('6 port(s): 3 protected, 1 unprotected, 1 stale, 1 no-addresses; 1 sent traffic that was dropped');
    expect(summaryLine(rows, 2)).toBe('6 port(s): 3 protected, 1 unprotected, 1 stale, 1 no-addresses; 1 sent traffic that was dropped; 2 shown');
    expect(summaryLine([], 0)).toBe('0 port(s): none; 0 sent traffic that was dropped');
  });
});
