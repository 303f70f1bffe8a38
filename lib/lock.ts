import { closeSync, openSync } from 'node:fs';
import { VifGuardError } from './errors.js';
import type { Runner } from './runner.js';

export const DEFAULT_LOCK_PATH = '/run/vif-guard.lock';

/** A state file kept next to the lock, in /run (gone at reboot): `/run/vif-guard<suffix>`. */
export function besideLock(lockPath: string, suffix: string): string {
  return `${lockPath.replace(/\.lock$/, '')}${suffix}`;
}

/**
 * Serialise read-diff-apply across concurrent hooks (libxl starts vifs in parallel). flock(1) locks
 * the open file description it inherits as fd 3, which this process shares, so the lock stays held
 * after flock exits and the kernel drops it if this process is killed (libxl SIGKILLs at 40 s).
 * The file is never unlinked, so there is no inode race.
 */
export async function withLock<T>(runner: Runner, path: string, timeoutSeconds: number, fn: () => Promise<T>): Promise<T> {
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o600);
  } catch (error) {
    throw new VifGuardError('LOCK', `cannot open lock file ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const result = await runner.run('flock', ['-x', '-w', String(timeoutSeconds), '3'], {
      extraFds: [fd],
      timeout: (timeoutSeconds + 5) * 1000,
    });
    if (result.exitCode !== 0) {
      throw new VifGuardError('LOCK', `another vif-guard held ${path} for more than ${timeoutSeconds}s`, { details: result.stderr });
    }
    return await fn();
  } finally {
    closeSync(fd);
  }
}
