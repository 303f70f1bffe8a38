import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRunner } from '../../lib/runner.js';

const leftovers = (pid = process.pid) => readdirSync(tmpdir()).filter((name) => name.startsWith(`vif-guard.${pid}.`));
const until = async (check: () => boolean, ms: number) => {
  for (const started = Date.now(); !check() && Date.now() - started < ms; ) await new Promise((done) => setTimeout(done, 20));
};

describe('runner', () => {
  it('a spooled stdout is the same text a pipe gives, and leaves no file behind', async () => {
    const runner = createRunner();
    const [piped, spooled] = await Promise.all([runner.run('seq', ['1', '200000']), runner.run('seq', ['1', '200000'], { spool: true })]);
    expect(spooled.exitCode).toBe(0);
    expect(spooled.stdout.length).toBeGreaterThan(1_000_000);
    expect(spooled.stdout).toBe(piped.stdout);
    const failed = await runner.run('sh', ['-c', 'echo partial; echo why >&2; exit 3'], { spool: true, input: '' });
    expect(failed).toMatchObject({ exitCode: 3, stdout: 'partial\n', stderr: 'why\n' });
    expect(leftovers()).toEqual([]);
  });

  it.each([false, true])('input reaches the child whole, on either path (light: %s), and leaves no file behind', async (light) => {
    const input = `${Array.from({ length: 100_000 }, (_, i) => `line ${i}`).join('\n')}\n`;
    const result = await createRunner({ light }).run('sh', ['-c', 'cat; echo done >&2'], { input });
    expect(result).toMatchObject({ exitCode: 0, stdout: input, stderr: 'done\n' });
    expect(await createRunner({ light }).run('wc', ['-c'], { input: '' })).toMatchObject({ exitCode: 0, stdout: '0\n' });
    expect(leftovers()).toEqual([]);
  });

  /*
   * nft -f - commits what it has read at end of input. vif-guard killed while it still writes (a
   * hotplug timeout, kill -9) must leave the tool all of its input or none of it; through a pipe it
   * left a prefix, which nft committed if it ended at a line.
   */
  it('vif-guard killed mid-run: the child still reads its whole input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vg-runner-'));
    try {
      const [script, counted] = [join(dir, 'killed.ts'), join(dir, 'counted')];
      // 4 MB: far more than a pipe holds (64 KiB) while the child waits before it reads.
      writeFileSync(script, `
import { createRunner } from ${JSON.stringify(resolve('lib/runner.ts'))};
void createRunner({ light: true }).run('sh', ['-c', 'sleep 0.5; wc -c > ${counted}'], { input: 'x'.repeat(4_000_000) });
setTimeout(() => process.kill(process.pid, 'SIGKILL'), 100);
`);
      // vite-node runs the TypeScript runner as it is (no build needed), in the process it starts.
      const child = spawn(resolve('node_modules/.bin/vite-node'), [script], { stdio: 'ignore' });
      const exit = await new Promise<NodeJS.Signals | number | null>((done) => child.on('exit', (code, signal) => done(signal ?? code)));
      expect(exit).toBe('SIGKILL');
      await until(() => existsSync(counted) && readFileSync(counted, 'utf8').endsWith('\n'), 5000);
      expect(readFileSync(counted, 'utf8').trim()).toBe('4000000');
      expect(leftovers(child.pid)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
