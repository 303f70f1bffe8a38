import { runDemo, type DemoRow } from '../../demo/run.js';
import { createRunner } from '../../runner.js';
import { log, printJson, renderTable } from '../context.js';

/** vif-guard demo: exit 0 only when every attack was blocked and every legitimate flow passed. */
export async function runDemoCommand(options: { json: boolean }): Promise<number> {
  const result = await runDemo(createRunner(), options.json ? () => undefined : log);
  if (options.json) {
    printJson(result);
    return result.ok ? 0 : 1;
  }
  const mark = (row: DemoRow) => (row.ok ? 'ok' : 'FAIL');
  const table = renderTable(
    ['FLOW', 'KIND', 'EXPECTED', 'WITHOUT VIF-GUARD', 'WITH VIF-GUARD', ''],
    result.rows.map((row) => [row.what, row.kind, row.expected, row.before, row.after, mark(row)]),
  );
  process.stdout.write(`\n${table}\n\n`);
  const attacks = result.rows.filter((row) => row.kind === 'attack');
  const legit = result.rows.filter((row) => row.kind === 'legitimate');
  process.stdout.write(
    `${attacks.filter((r) => r.after === 'blocked').length}/${attacks.length} attacks blocked, ${legit.filter((r) => r.after === 'passed').length}/${legit.length} legitimate flows passed, in ${result.seconds.toFixed(1)} s: ${result.ok ? 'PASS' : 'FAIL'}\n`,
  );
  return result.ok ? 0 : 1;
}
