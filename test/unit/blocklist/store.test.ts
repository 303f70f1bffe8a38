import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hasBlocklists, readBlocklists, readBlocklistsOf, writeTargetLists, type Blocklist } from '../../../lib/blocklist/store.js';

const list = (target: string, name: string): Blocklist => ({ target, name, both: false, source: '--cidr', prefixes: ['198.51.100.0/24'], updated: '2026-11-21T00:00:00.000Z' });

describe('blocklist store', () => {
  const dirs: string[] = [];
  const dir = () => {
    const made = join(mkdtempSync(join(tmpdir(), 'vif-guard-lists-')), 'blocklists');
    dirs.push(made);
    return made;
  };
  afterEach(() => {
    for (const made of dirs.splice(0)) rmSync(join(made, '..'), { recursive: true, force: true });
  });

  it('readBlocklistsOf reads only the named targets\' files', () => {
    const d = dir();
    expect(hasBlocklists(d)).toBe(false);
    writeTargetLists('web', [list('web', 'cn'), list('web', 'abuse')], d);
    writeTargetLists('vif3.0', [list('vif3.0', 'cn')], d);
    writeTargetLists('db', [list('db', 'cn')], d);
    expect(hasBlocklists(d)).toBe(true);
    expect(readBlocklistsOf(['vif3.0', 'web'], d).map((l) => `${l.target}/${l.name}`)).toEqual(['vif3.0/cn', 'web/cn', 'web/abuse']);
    expect(readBlocklistsOf(['vif9.0', '-'], d)).toEqual([]);
    expect(readBlocklists(d)).toHaveLength(4);
  });

  it('a broken file is an error naming it, but only where it is read', () => {
    const d = dir();
    writeTargetLists('web', [list('web', 'cn')], d);
    writeFileSync(join(d, 'db.json'), '{not json');
    expect(() => readBlocklists(d)).toThrow(/db\.json: not a vif-guard blocklist/);
    expect(() => readBlocklistsOf(['db'], d)).toThrow(/db\.json: not a vif-guard blocklist/);
    expect(readBlocklistsOf(['web'], d)).toHaveLength(1);
  });

  it('never reads outside the directory, and ignores lists filed under another target', () => {
    const d = dir();
    writeTargetLists('web', [list('web', 'cn')], d);
    writeFileSync(join(d, 'db.json'), `${JSON.stringify([list('web', 'stray')])}\n`);
    expect(readBlocklistsOf(['../blocklists/web', '.hidden', 'db'], d)).toEqual([]);
  });
});
