import { describe, expect, it } from 'vitest';
import { planTable, renderRestorePayload } from '../../../lib/backend/diff.js';
import { parseSave } from '../../../lib/backend/save-parse.js';
import type { TableSpec } from '../../../lib/rules/types.js';

const FOREIGN = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd
-A FORWARD -m physdev --physdev-is-bridged --physdev-in vif1.0 -j ACCEPT
-A f2b-sshd -j RETURN
COMMIT
`;

const desired: TableSpec = {
  table: 'filter',
  chains: [
    { name: 'vif-guard-fwd', rules: [['-j', 'vif-guard-in']] },
    { name: 'vif-guard-in', rules: [] },
  ],
  jumps: [{ chain: 'FORWARD', rule: ['-m', 'physdev', '--physdev-is-bridged', '-j', 'vif-guard-fwd'] }],
};

describe('planTable', () => {
  it('from nothing: declares chains, fills them, puts the jump first; never names a foreign rule', () => {
    const plan = planTable(parseSave(FOREIGN, 'filter'), desired);
    expect(renderRestorePayload(plan)).toBe(`*filter
:vif-guard-fwd - [0:0]
:vif-guard-in - [0:0]
-A vif-guard-fwd -j vif-guard-in
-I FORWARD 1 -m physdev --physdev-is-bridged -j vif-guard-fwd
COMMIT
`);
  });

  it('the same state again plans nothing', () => {
    const live = `*filter
:FORWARD ACCEPT [0:0]
:vif-guard-fwd - [0:0]
:vif-guard-in - [0:0]
-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd
-A FORWARD -s 192.0.2.0/24 -j ACCEPT
-A vif-guard-fwd -j vif-guard-in
COMMIT
`;
    const plan = planTable(parseSave(live, 'filter'), desired);
    expect(plan.lines).toEqual([]);
    expect(renderRestorePayload(plan)).toBe('');
  });

  it('moves its jump back to the top when something was inserted above it (stock vif-bridge does -I FORWARD)', () => {
    const live = `*filter
:FORWARD ACCEPT [0:0]
:vif-guard-fwd - [0:0]
:vif-guard-in - [0:0]
-A FORWARD -m physdev --physdev-is-bridged --physdev-in vif3.0 -j ACCEPT
-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd
-A vif-guard-fwd -j vif-guard-in
COMMIT
`;
    expect(planTable(parseSave(live, 'filter'), desired).lines).toEqual([
      '-D FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd',
      '-I FORWARD 1 -m physdev --physdev-is-bridged -j vif-guard-fwd',
    ]);
  });

  it('rewrites only changed chains and removes stale ones after their references are gone', () => {
    const live = `*filter
:FORWARD ACCEPT [0:0]
:vif-guard-fwd - [0:0]
:vif-guard-in - [0:0]
:vif-guard-i-old - [0:0]
-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd
-A vif-guard-fwd -j vif-guard-in
-A vif-guard-in -m physdev --physdev-in old -j vif-guard-i-old
-A vif-guard-i-old -j DROP
COMMIT
`;
    const plan = planTable(parseSave(live, 'filter'), desired);
    expect(plan.lines).toEqual(['-F vif-guard-in', '-F vif-guard-i-old', '-X vif-guard-i-old']);
    expect(plan.changed).toEqual(['vif-guard-in']);
    expect(plan.removed).toEqual(['vif-guard-i-old']);
  });

  it('removing everything deletes the jumps before the chains', () => {
    const live = `*filter
:FORWARD ACCEPT [0:0]
:vif-guard-fwd - [0:0]
-A FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd
-A FORWARD -j ACCEPT
COMMIT
`;
    expect(planTable(parseSave(live, 'filter'), { table: 'filter', chains: [], jumps: [] }).lines).toEqual([
      '-D FORWARD -m physdev --physdev-is-bridged -j vif-guard-fwd',
      '-F vif-guard-fwd',
      '-X vif-guard-fwd',
    ]);
  });
});
