import { loadSettings } from '../config/load.js';
import { exitCodeFor, toVifGuardError } from '../errors.js';
import type { GuestPort } from '../guest/model.js';
import { ensureBridgeNetfilter } from '../kernel/bridge-nf.js';
import { DEFAULT_LOCK_PATH } from '../lock.js';
import { advertisementWarnings, isGuarded } from '../rules/port.js';
import { createRunner } from '../runner.js';
import { applyPortChange, type ApplyReport, type EngineContext } from '../core/engine.js';
import { parseHookArguments, parseLibxlInvocation, type HotplugAction, type HotplugRequest } from './hotplug.js';
import { readPortFromXenstore, resolveIfname, xenKey } from './port.js';
import { createXenstore, type Xenstore } from './xenstore.js';
import { parseIfname } from '../guest/validate.js';

function summary(report: ApplyReport): string {
  const changes = report.plans.flatMap((plan) => (plan.lines.length ? [`ipv${plan.family}: ${plan.lines.length} lines`] : []));
  if (report.bridgeScript) changes.push(`bridge: ${report.bridgeScript.trimEnd().split('\n').length} lines`);
  return changes.length ? `${report.backend} ${changes.join(', ')}` : `${report.backend}, already in place`;
}

function describe(port: GuestPort): string {
  const addresses = port.addresses.map((address) => address.cidr).join(' ') || 'no addresses';
  return `${port.ifname} (guest ${port.guest}, bridge ${port.bridge ?? '?'}, ${addresses})`;
}

async function up(ctx: EngineContext, request: HotplugRequest, xenstore: Xenstore): Promise<void> {
  const port = await readPortFromXenstore(request, xenstore);
  if (!isGuarded(port, ctx.settings)) {
    const report = await applyPortChange(ctx, { kind: 'up', port });
    ctx.log(`${describe(port)} left unprotected: no ip= configured and unaddressed = allow (${summary(report)})`);
    return;
  }
  // Only the iptables backend needs bridged frames in iptables; the nftables backend filters in the bridge itself.
  const prepareIptables = async () => {
    for (const action of await ensureBridgeNetfilter(ctx.runner, process.env.VIF_GUARD_PROC_BRIDGE)) ctx.log(action);
  };
  const report = await applyPortChange({ ...ctx, prepareIptables }, { kind: 'up', port });
  ctx.log(`${describe(port)} protected (${summary(report)})`);
  for (const warning of advertisementWarnings(report.engine, [port], ctx.settings)) ctx.log(`warning: ${warning}`);
}

async function down(ctx: EngineContext, request: HotplugRequest, xenstore: Xenstore): Promise<void> {
  // offline may come twice, or after an online that never finished: the vifname node may be gone.
  let vifname: string | undefined;
  if (!request.dev && request.xenbusPath) {
    const value = await xenstore.read(`${request.xenbusPath}/vifname`).catch(() => undefined);
    if (value) vifname = parseIfname(value, 'vifname', { source: `xenstore ${request.xenbusPath}/vifname` });
  }
  const ifname = resolveIfname(request, vifname);
  const key = request.typeIf === 'vif' ? xenKey(request.xenbusPath) : undefined;
  const report = await applyPortChange(ctx, { kind: 'down', ifname, key });
  ctx.log(`${ifname} released (${summary(report)})`);
}

/** Write the failure where libxl reads it (xen-hotplug.md 2.4), best effort: we are already failing. */
async function reportToXenstore(xenstore: Xenstore, request: HotplugRequest | undefined, message: string): Promise<void> {
  if (!request?.xenbusPath || request.action !== 'up') return;
  await xenstore.write(`${request.xenbusPath}/hotplug-error`, `vif-guard: ${message}`).catch(() => undefined);
  await xenstore.write(`${request.xenbusPath}/hotplug-status`, 'error').catch(() => undefined);
}

/**
 * The whole hook: parse, resolve, apply. Log lines go to stderr (xen-hotplug.log under the stock
 * scripts); on failure the one-line reason also goes to stdout, which vif-guard.hook hands to `fatal`.
 */
export async function runHotplug(mode: HotplugAction | 'libxl', argv: readonly string[]): Promise<number> {
  const log = (line: string) => process.stderr.write(`vif-guard: ${line}\n`);
  const runner = createRunner({ light: true });
  const xenstore = createXenstore(runner);
  let request: HotplugRequest | undefined;
  try {
    request = mode === 'libxl' ? parseLibxlInvocation(argv, process.env) : parseHookArguments(mode, argv, process.env);
    const ctx: EngineContext = { runner, settings: loadSettings(), lockPath: process.env.VIF_GUARD_LOCK ?? DEFAULT_LOCK_PATH, log };
    await (request.action === 'up' ? up(ctx, request, xenstore) : down(ctx, request, xenstore));
    return 0;
  } catch (thrown) {
    const error = toVifGuardError(thrown);
    const action = request?.action ?? (mode === 'libxl' ? 'up' : mode);
    log(`${action === 'up' ? 'online' : 'offline'} failed: ${error.shortMessage}`);
    if (error.details) log(error.details.replace(/\n/g, '\n  '));
    if (action === 'down') {
      // libxl ignores a failing offline; say so, and exit 0 so the stock script finishes its teardown.
      return 0;
    }
    process.stdout.write(`${error.shortMessage}\n`);
    await reportToXenstore(xenstore, request, error.shortMessage);
    return exitCodeFor(error);
  }
}
