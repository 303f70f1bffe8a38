import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VifGuardError } from './errors.js';

export interface RunOptions {
  /**
   * The child's stdin: written whole to an unlinked temporary file before the child starts, never
   * streamed through a pipe. `nft -f -` commits whatever it has read at end of input as one
   * transaction; through a pipe, vif-guard killed mid-write (libxl's hotplug timeout, kill -9)
   * left it a script cut at a line boundary, which it committed: a flush without its refill, a
   * port's old elements deleted without the new ones added. From a file it reads all or nothing.
   */
  readonly input?: string;
  /** Milliseconds; hooks must finish well inside libxl's 40 s. */
  readonly timeout?: number;
  /** Extra file descriptors to hand to the child as fd 3, 4, ... */
  readonly extraFds?: readonly number[];
  /**
   * The child's stdout goes to an unlinked temporary file, read once it exits. For a child that
   * prints megabytes while node's thread is busy with other work: through a pipe it would stall
   * whenever the pipe's 64 KiB are full, and finish only after node gets back to reading.
   */
  readonly spool?: boolean;
}

export interface RunResult {
  readonly command: string;
  readonly args: readonly string[];
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** The only way vif-guard starts a process. Tests hand the core a recording Runner instead. */
export interface Runner {
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Absolute path of a tool, or undefined when it is not installed. */
  which(command: string): string | undefined;
}

// libxl's PATH is unpredictable (xen-hotplug.md 2.2): look in the system directories first.
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export interface RunnerOptions {
  /** Directories searched before the system ones (VIF_GUARD_BIN_DIR, for tests and odd hosts). */
  readonly binDirs?: readonly string[];
  readonly defaultTimeout?: number;
  /**
   * Hooks run on every guest start with a 100 ms budget, and loading execa's module graph costs 24 ms
   * of it (measured: node alone 60 ms, + bundled execa 84 ms). They spawn with node's child_process
   * directly, which covers what they need (argv, stdin, timeout, captured output); the CLI keeps execa.
   */
  readonly light?: boolean;
}

export function createRunner(options: RunnerOptions = {}): Runner {
  const envDirs = (process.env.VIF_GUARD_BIN_DIR ?? '').split(':').filter(Boolean);
  const pathDirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  const dirs = [...(options.binDirs ?? []), ...envDirs, ...SYSTEM_DIRS, ...pathDirs];
  const cache = new Map<string, string | undefined>();
  const defaultTimeout = options.defaultTimeout ?? 30_000;

  const which = (command: string): string | undefined => {
    if (command.includes('/')) return command;
    if (cache.has(command)) return cache.get(command);
    let found: string | undefined;
    for (const dir of dirs) {
      try {
        accessSync(`${dir}/${command}`, constants.X_OK);
        found = `${dir}/${command}`;
        break;
      } catch {
        // not in this directory
      }
    }
    cache.set(command, found);
    return found;
  };

  return {
    which,
    async run(command, args, runOptions = {}) {
      const file = which(command);
      if (!file) throw new VifGuardError('MISSING_TOOL', `${command} is not installed (searched ${dirs.slice(0, 8).join(':')})`);
      // execa streams every input through a pipe, a file's too (createReadStream): a run with input
      // goes through node's spawn, which hands the child a complete file (RunOptions.input).
      if (runOptions.extraFds?.length || runOptions.spool || runOptions.input !== undefined || options.light) {
        return spawnCapture(file, args, runOptions, runOptions.timeout ?? defaultTimeout);
      }
      // Imported on first use: hook bundles never evaluate it.
      const { execa } = await import('execa');
      const result = await execa(file, [...args], {
        reject: false,
        stdin: 'ignore',
        timeout: runOptions.timeout ?? defaultTimeout,
        env: { LC_ALL: 'C', LANG: 'C' },
        stripFinalNewline: false,
      });
      return {
        command: file,
        args,
        exitCode: typeof result.exitCode === 'number' ? result.exitCode : 128,
        stdout: String(result.stdout ?? ''),
        stderr: String(result.stderr ?? ''),
        timedOut: result.timedOut === true,
      };
    },
  };
}

let spools = 0;

/** A new file only this process can name (O_EXCL: never a planted symlink), already unlinked. */
function openSpool(suffix = 'out'): number {
  const path = join(tmpdir(), `vif-guard.${process.pid}.${(spools += 1)}.${suffix}`);
  const fd = openSync(path, 'wx+', 0o600);
  unlinkSync(path);
  return fd;
}

/**
 * A child's stdin (RunOptions.input): 'ignore' without input, else a descriptor of an unlinked file
 * that holds all of it, at offset 0 (written with pwrite). 'pipe' only when no such file can be made
 * (a full or read-only temporary directory): the input is then streamed, as before.
 */
function inputFile(input: string | undefined): number | 'ignore' | 'pipe' {
  if (input === undefined) return 'ignore';
  let fd: number | undefined;
  try {
    fd = openSpool('in');
    const data = Buffer.from(input);
    for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, done);
    return fd;
  } catch {
    if (fd !== undefined) closeSync(fd);
    return 'pipe';
  }
}

function closeInput(stdin: number | 'ignore' | 'pipe'): void {
  if (typeof stdin === 'number') closeSync(stdin);
}

function readSpool(fd: number): string {
  const buffer = Buffer.alloc(fstatSync(fd).size);
  let done = 0;
  while (done < buffer.length) {
    const read = readSync(fd, buffer, done, buffer.length - done, done);
    if (read === 0) break;
    done += read;
  }
  closeSync(fd);
  return buffer.subarray(0, done).toString();
}

/**
 * node's spawn: for hooks (see RunnerOptions.light), for flock, which needs the parent's lock
 * descriptor as its fd 3 (execa does not pass extra descriptors), for a spooled stdout, and for any input.
 */
function spawnCapture(file: string, args: readonly string[], options: RunOptions, timeout: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const fds = options.extraFds ?? [];
    const spool = options.spool ? openSpool() : undefined;
    const stdin = inputFile(options.input);
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(file, [...args], {
        stdio: [stdin, spool ?? 'pipe', 'pipe', ...fds],
        env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
      });
    } finally {
      // The child has its own copy of the descriptor now (or it failed to start: 'error' below).
      closeInput(stdin);
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let done = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeout);
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    const finish = (exitCode: number, extra = '') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const stdout = spool === undefined ? Buffer.concat(out).toString() : readSpool(spool);
      resolve({ command: file, args, exitCode, stdout, stderr: Buffer.concat(err).toString() + extra, timedOut });
    };
    child.on('error', (error) => finish(127, error.message));
    child.on('close', (code) => finish(code ?? 128));
    if (stdin === 'pipe') {
      // A child that exits without reading its input (EPIPE) reports through its exit status.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.input);
    }
  });
}

/** Run and throw a VifGuardError with the tool's stderr when it fails. */
export async function runOrThrow(
  runner: Runner,
  command: string,
  args: readonly string[],
  code: 'APPLY' | 'KERNEL' | 'XENSTORE' | 'MISSING_TOOL',
  options?: RunOptions,
): Promise<RunResult> {
  const result = await runner.run(command, args, options);
  if (result.exitCode !== 0) {
    const why = result.timedOut ? 'timed out' : `exit ${result.exitCode}`;
    const firstLine = result.stderr.split('\n').find((line) => line.trim() !== '') ?? '';
    throw new VifGuardError(code, `${command} ${args.join(' ')} failed (${why})${firstLine ? `: ${firstLine.trim()}` : ''}`, {
      details: result.stderr,
    });
  }
  return result;
}
