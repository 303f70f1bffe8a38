import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { createRunner } from '../../lib/runner.js';

describe('runner', () => {
  it('a spooled stdout is the same text a pipe gives, and leaves no file behind', async () => {
    const runner = createRunner();
    const leftovers = () => readdirSync(tmpdir()).filter((name) => name.startsWith(`vif-guard.${process.pid}.`));
    const [piped, spooled] = await Promise.all([runner.run('seq', ['1', '200000']), runner.run('seq', ['1', '200000'], { spool: true })]);
    expect(spooled.exitCode).toBe(0);
    expect(spooled.stdout.length).toBeGreaterThan(1_000_000);
    expect(spooled.stdout).toBe(piped.stdout);
    const failed = await runner.run('sh', ['-c', 'echo partial; echo why >&2; exit 3'], { spool: true, input: '' });
    expect(failed).toMatchObject({ exitCode: 3, stdout: 'partial\n', stderr: 'why\n' });
    expect(leftovers()).toEqual([]);
  });
});
