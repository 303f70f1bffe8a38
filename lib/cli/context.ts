import { loadSettings } from '../config/load.js';
import type { EngineContext } from '../core/engine.js';
import { DEFAULT_LOCK_PATH } from '../lock.js';
import { createRunner } from '../runner.js';

export const log = (line: string): void => {
  process.stderr.write(`vif-guard: ${line}\n`);
};

/** The settings, runner and lock every command shares; VIF_GUARD_CONFIG / VIF_GUARD_LOCK point them elsewhere. */
export function createContext(options: { light?: boolean } = {}): EngineContext {
  return { runner: createRunner({ light: options.light ?? false }), settings: loadSettings(), lockPath: process.env.VIF_GUARD_LOCK ?? DEFAULT_LOCK_PATH, log };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Fixed-width columns for a terminal. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
