import type { Runner, RunOptions, RunResult } from '../../lib/runner.js';

export interface Call {
  readonly command: string;
  readonly args: readonly string[];
  readonly input: string | undefined;
}

type Responder = (call: Call) => Partial<RunResult> | undefined;

/** A Runner that records every call and answers from a function; nothing is spawned. */
export function createRecordingRunner(respond: Responder, installed: readonly string[] = ['iptables-nft-restore', 'iptables-nft-save', 'flock']) {
  const calls: Call[] = [];
  const runner: Runner = {
    which: (command) => (installed.includes(command) ? `/usr/sbin/${command}` : undefined),
    async run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
      const call = { command, args, input: options.input };
      calls.push(call);
      const answer = respond(call) ?? {};
      return { command, args, exitCode: 0, stdout: '', stderr: '', timedOut: false, ...answer };
    },
  };
  return { runner, calls };
}
