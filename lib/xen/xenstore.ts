import { VifGuardError } from '../errors.js';
import type { Runner } from '../runner.js';

/** xenstore through the stock clients, exactly as the hotplug scripts use it. */
export interface Xenstore {
  /** The value, or undefined when the node does not exist. */
  read(path: string): Promise<string | undefined>;
  write(path: string, value: string): Promise<void>;
  list(path: string): Promise<string[]>;
}

export function createXenstore(runner: Runner): Xenstore {
  return {
    async read(path) {
      const result = await runner.run('xenstore-read', [path], { timeout: 10_000 });
      if (result.exitCode !== 0) return undefined;
      return result.stdout.replace(/\n$/, '');
    },
    async write(path, value) {
      const result = await runner.run('xenstore-write', [path, value], { timeout: 10_000 });
      if (result.exitCode !== 0) throw new VifGuardError('XENSTORE', `xenstore-write ${path} failed: ${result.stderr.trim()}`);
    },
    async list(path) {
      const result = await runner.run('xenstore-list', [path], { timeout: 10_000 });
      if (result.exitCode !== 0) return [];
      return result.stdout.split('\n').filter(Boolean);
    },
  };
}
