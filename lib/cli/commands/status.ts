import { writeAtomic } from '../../files.js';
import { blockResolver, readEverything } from '../../core/engine.js';
import { readBlocklists } from '../../blocklist/store.js';
import { collectInventory } from '../../core/inventory.js';
import { buildStatus, renderPrometheus, selectRows, summaryLine, type PortStatus } from '../../core/status.js';
import { toVifGuardError } from '../../errors.js';
import { createContext, log, printJson, renderTable } from '../context.js';

const human = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(1)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : String(n));


export async function collectStatus(): Promise<{ rows: PortStatus[]; backend: string; warnings: string[] }> {
  const ctx = createContext();
  const { state: live, backend, warnings } = await readEverything(ctx);
  let expected;
  try {
    const inventory = await collectInventory(ctx.runner, ctx.settings);
    warnings.push(...inventory.warnings);
    expected = inventory.hypervisor ? inventory.ports : undefined;
  } catch (error) {
    warnings.push(`cannot compare with the configs: ${toVifGuardError(error).shortMessage}`);
  }
  return { rows: buildStatus(live, expected, ctx.settings, blockResolver(ctx.settings, readBlocklists())), backend, warnings };
}

/** vif-guard status: one line per guest port with its state and drop counters. */
export async function runStatus(options: { json: boolean; prometheus: string | undefined; targets?: readonly string[]; problems?: boolean }): Promise<number> {
  const { rows: all, backend, warnings } = await collectStatus();
  // Atomically: node_exporter's textfile collector must never read half a file. Every port, whatever is shown.
  if (options.prometheus) writeAtomic(options.prometheus, renderPrometheus(all));
  const rows = selectRows(all, options.targets ?? [], options.problems ?? false);
  if (options.json) {
    printJson({ backend, ports: rows, warnings });
    return 0;
  }
  for (const warning of warnings) log(`warning: ${warning}`);
  if (all.length === 0) {
    log(`no guest ports known (${backend})`);
    return 0;
  }
  if (rows.length === 0) {
    log(`no problems: ${summaryLine(all, all.length)} (${backend})`);
    return 0;
  }
  const table = renderTable(
    ['GUEST', 'VIF', 'BRIDGE', 'ADDRESSES', 'MAC', 'STATE', 'SPOOFED PKTS', 'BYTES', 'MAC/ARP/ND', 'ROGUE DHCP/RA', 'NOT-FOR-GUEST'],
    rows.map((row) => {
      const d = row.dropped;
      return [
        row.guest, row.vif, row.bridge ?? '-', row.addresses.join(' ') || '-', row.mac ?? '-', row.state,
        human(row.spoofed.packets), human(row.spoofed.bytes),
        human(d.mac.packets + d.arpMac.packets + d.arpIp.packets + d.neighborTarget.packets + d.ethertype.packets),
        human(d.dhcpServer.packets + d.dhcpv6Server.packets + d.routerAdvert.packets + d.redirect.packets),
        human(d.notForGuest4.packets + d.notForGuest6.packets),
      ];
    }),
  );
  process.stdout.write(`${table}\n`);
  // After the table: with thousands of guests it is the line an admin reads.
  log(`${summaryLine(all, rows.length)} (${backend})`);
  return 0;
}
