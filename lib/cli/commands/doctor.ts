import { runDoctor, worst, type Check } from '../../core/doctor.js';
import { createContext, printJson } from '../context.js';

const MARK: Record<Check['level'], string> = { ok: 'ok   ', warning: 'WARN ', error: 'ERROR' };

/** vif-guard doctor: 0 all good, 1 warnings, 2 errors. */
export async function runDoctorCommand(options: { json: boolean }): Promise<number> {
  const ctx = createContext();
  const checks = await runDoctor({
    runner: ctx.runner,
    settings: ctx.settings,
    root: process.env.VIF_GUARD_ROOT ?? '/',
    procSys: process.env.VIF_GUARD_PROC_SYS ?? '/proc/sys',
  });
  const status = worst(checks);
  if (options.json) {
    printJson({ status, checks });
    return status;
  }
  for (const check of checks) {
    process.stdout.write(`${MARK[check.level]} ${check.message}\n`);
    if (check.fix && check.level !== 'ok') process.stdout.write(`      fix: ${check.fix}\n`);
  }
  const counts = (['error', 'warning'] as const).map((level) => `${checks.filter((c) => c.level === level).length} ${level}(s)`);
  process.stdout.write(`${status === 0 ? 'all good' : counts.join(', ')}\n`);
  return status;
}
