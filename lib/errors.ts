/** Every failure vif-guard reports. `code` drives the exit status; `shortMessage` is one line for logs. */
export type ErrorCode =
  | 'INVALID_INPUT' // a config value, argument or file that fails validation
  | 'MISSING_TOOL' // a binary vif-guard needs is not installed
  | 'KERNEL' // the kernel refused a setting (br_netfilter, sysctl)
  | 'APPLY' // iptables-restore or another apply step failed
  | 'LOCK' // the vif-guard lock could not be taken in time
  | 'XENSTORE' // xenstore could not be read or written
  | 'INTERNAL';

const EXIT_CODES: Record<ErrorCode, number> = {
  INVALID_INPUT: 2,
  MISSING_TOOL: 3,
  KERNEL: 4,
  APPLY: 5,
  LOCK: 6,
  XENSTORE: 7,
  INTERNAL: 70,
};

export class VifGuardError extends Error {
  override readonly name = 'VifGuardError';
  readonly code: ErrorCode;
  readonly shortMessage: string;
  readonly details: string | undefined;

  constructor(code: ErrorCode, shortMessage: string, options: { details?: string; cause?: unknown } = {}) {
    const oneLine = shortMessage.replace(/[\r\n]+/g, ' ').trim();
    super(options.details ? `${oneLine}\n${options.details}` : oneLine, { cause: options.cause });
    this.code = code;
    this.shortMessage = oneLine;
    this.details = options.details;
  }
}

export function exitCodeFor(error: unknown): number {
  return error instanceof VifGuardError ? EXIT_CODES[error.code] : EXIT_CODES.INTERNAL;
}

/** Turn anything thrown into a VifGuardError without losing the original. */
export function toVifGuardError(error: unknown): VifGuardError {
  if (error instanceof VifGuardError) return error;
  const text = error instanceof Error ? error.message : String(error);
  return new VifGuardError('INTERNAL', `internal error: ${text.split('\n')[0]}`, { cause: error });
}

/** Where a value came from, for messages: "/etc/xen/vm01 line 7", "xenstore backend/vif/5/0/ip". */
export interface Origin {
  readonly source: string;
  readonly line?: number;
}

export function describeOrigin(origin: Origin): string {
  return origin.line === undefined ? origin.source : `${origin.source} line ${origin.line}`;
}

export function invalid(what: string, expected: string, got: string, origin: Origin): VifGuardError {
  return new VifGuardError('INVALID_INPUT', `Expected \`${what}\` to be ${expected}, got ${quoteValue(got)} (${describeOrigin(origin)})`);
}

/** Show a hostile value safely in one line: control characters escaped, length capped. */
export function quoteValue(value: string): string {
  const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return '`' + shown.replace(/[\x00-\x1f\x7f`]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`) + '`';
}
