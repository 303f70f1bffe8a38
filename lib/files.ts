import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { VifGuardError } from './errors.js';

/** A file's text, or undefined when it does not exist; any other failure is an error naming it. */
export function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VifGuardError('INVALID_INPUT', `cannot read ${path}: ${(error as Error).message}`);
  }
}

/** A state file's text, or undefined if it cannot be read for any reason (caches in /run: the caller then asks the kernel). */
export function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Write through a temp file in the same directory and rename, so no reader ever sees half a file. */
export function writeAtomic(path: string, text: string, mode = 0o644): void {
  const temp = join(dirname(path), `.${process.pid}.vif-guard.tmp`);
  try {
    writeFileSync(temp, text, { mode });
    renameSync(temp, path);
  } catch (error) {
    throw new VifGuardError('INVALID_INPUT', `cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}
