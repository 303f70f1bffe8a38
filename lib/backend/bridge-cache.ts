import { rmSync } from 'node:fs';
import { readIfPresent, writeAtomic } from '../files.js';
import { besideLock } from '../lock.js';
import type { BridgeSpec } from '../rules/types.js';
import { bridgeFromRecords, type LiveBridge } from './nft-bridge.js';

/*
 * What the nftables backend last committed, kept in /run (tmpfs, gone at reboot) next to the lock:
 * each port's record (the comment on its guarded element), one line per port after a line naming
 * the layout. A hook finds its own line (and one with the same key) by searching the text, so its
 * cost does not grow with the number of guests; asking nft would list the set (30 ms at 4,000).
 *
 * It is only ever trusted under the lock, removed before every commit and rewritten after it, so a
 * hook killed mid-way leaves no file and the next one reads the kernel. A file from a missing or
 * other layout makes the commit fail (its set does not exist), and the engine then reads the kernel.
 */
export function portCachePath(lockPath: string): string {
  return besideLock(lockPath, '-ports.cache');
}

/** Any line that is not a port record: an interface name as parseIfname allows it, a tab, a record of plain characters, and optionally a tab and a digest. */
const BAD_LINE = /^(?![A-Za-z0-9_][A-Za-z0-9_.-]{0,14}\t[^\t"\\\r\n]+(?:\t[0-9a-f]{12})?$).+$/m;

/** The cache's text: `<digest>\n` then `<ifname>\t<comment>\n` per port. */
export class PortRecords {
  private constructor(private text: string) {}

  static read(path: string, digest: string): PortRecords | undefined {
    const text = readIfPresent(path);
    return text?.startsWith(`${digest}\n`) ? PortRecords.fromText(text) : undefined;
  }

  /**
   * Records from a file's text whose first line the caller has checked; undefined if any other line is
   * not `<interface name>\t<record>[\t<digest>]` with nothing a script could be steered by (quotes,
   * backslashes): names from here end up in nft scripts and restore payloads, so they are checked like
   * any other input, and a file that fails is treated as missing (the kernel is read instead).
   */
  static fromText(text: string): PortRecords | undefined {
    return BAD_LINE.test(text.slice(text.indexOf('\n') + 1)) ? undefined : new PortRecords(text);
  }

  static of(digest: string, records: Iterable<readonly [string, string]>): PortRecords {
    let text = `${digest}\n`;
    for (const [ifname, comment] of records) text += `${ifname}\t${comment}\n`;
    return new PortRecords(text);
  }

  private lineAt(index: number): { start: number; end: number } {
    const start = this.text.lastIndexOf('\n', index) + 1;
    const end = this.text.indexOf('\n', index);
    return { start, end: end < 0 ? this.text.length : end + 1 };
  }

  /** The comment of one port, if recorded. */
  get(ifname: string): string | undefined {
    const at = this.text.indexOf(`\n${ifname}\t`);
    if (at < 0) return undefined;
    const { end } = this.lineAt(at + 1);
    return this.text.slice(at + ifname.length + 2, end - 1);
  }

  /** The ports recorded under a key (`xen:5/0`), whatever their names now. */
  withKey(key: string): string[] {
    const found: string[] = [];
    let from = 0;
    for (;;) {
      const at = this.text.indexOf(` k=${key} `, from);
      if (at < 0) return found;
      const { start, end } = this.lineAt(at);
      found.push(this.text.slice(start, this.text.indexOf('\t', start)));
      from = end;
    }
  }

  /** The ports a name picks, as blocklist targets do: the port of that interface name and every port of the guest of that name. */
  named(name: string): string[] {
    const found = new Set<string>(this.get(name) === undefined ? [] : [name]);
    let from = 0;
    for (;;) {
      // A record starts with its guest (`g=<name> `) and holds no tab, so this is the guest field.
      const at = this.text.indexOf(`\tg=${name} `, from);
      if (at < 0) return [...found];
      const { start, end } = this.lineAt(at);
      found.add(this.text.slice(start, at));
      from = end;
    }
  }

  /** The records of these ports (those that have one), without anything after the record's own tab-separated field. */
  recordsOf(ifnames: Iterable<string>): Record<string, string> {
    const found: Record<string, string> = {};
    for (const ifname of ifnames) {
      const record = this.get(ifname)?.split('\t')[0];
      if (record !== undefined) found[ifname] = record;
    }
    return found;
  }

  delete(ifname: string): void {
    const at = this.text.indexOf(`\n${ifname}\t`);
    if (at < 0) return;
    const { end } = this.lineAt(at + 1);
    this.text = this.text.slice(0, at + 1) + this.text.slice(end);
  }

  set(ifname: string, comment: string): void {
    this.delete(ifname);
    this.text += `${ifname}\t${comment}\n`;
  }

  /** Every port's record, as recordsOf gives them, in one pass (recordsOf looks each name up). */
  allRecords(): Record<string, string> {
    const found: Record<string, string> = {};
    for (const [ifname, rest] of this.entries()) found[ifname] = rest.split('\t')[0] ?? rest;
    return found;
  }

  entries(): [string, string][] {
    return this.text
      .split('\n')
      .slice(1)
      .filter(Boolean)
      .map((line) => {
        const tab = line.indexOf('\t');
        return [line.slice(0, tab), line.slice(tab + 1)];
      });
  }

  write(path: string): void {
    try {
      writeAtomic(path, this.text, 0o600);
    } catch {
      try {
        dropPortCache(path);
      } catch {
        // Nothing more to do: a stale file fails its next commit, which then reads the kernel.
      }
    }
  }
}

export function readPortCache(path: string, digest: string): LiveBridge | undefined {
  const records = PortRecords.read(path, digest);
  return records ? bridgeFromRecords(digest, Object.fromEntries(records.entries())) : undefined;
}

export function dropPortCache(path: string): void {
  rmSync(path, { force: true });
}

/** After a commit: the ports as they now are. Failing to write only costs the next hook a kernel read. */
export function writePortCache(path: string, desired: BridgeSpec | undefined): void {
  if (!desired) {
    dropPortCache(path);
    return;
  }
  PortRecords.of(desired.digest, desired.ports.map((port) => [port.ifname, port.comment] as const)).write(path);
}
