import { loadSettings } from '../config/load.js';
import { exitCodeFor, toVifGuardError, VifGuardError } from '../errors.js';
import { ensureBridgeNetfilter } from '../kernel/bridge-nf.js';
import { DEFAULT_LOCK_PATH } from '../lock.js';
import { advertisementWarnings, isGuarded } from '../rules/port.js';
import { createRunner } from '../runner.js';
import { applyPortChange, type EngineContext } from '../core/engine.js';
import { validateCtid } from './config.js';
import { containerEffective, containerPorts, loadHostModules, readContainer } from './host.js';
import { parseIfname } from '../guest/validate.js';
import type { GuestPort } from '../guest/model.js';

const log = (line: string) => process.stderr.write(`vif-guard: ${line}\n`);

/** Inside each hook's try: a bad vif-guard.conf is reported like any other bad input, not as a crash. */
function context(): EngineContext {
  return { runner: createRunner({ light: true }), settings: loadSettings(), lockPath: process.env.VIF_GUARD_LOCK ?? DEFAULT_LOCK_PATH, log };
}

async function protect(ctx: EngineContext, port: GuestPort): Promise<void> {
  // Only the iptables backend needs bridged frames in iptables.
  const prepareIptables = async () => {
    for (const action of await ensureBridgeNetfilter(ctx.runner, process.env.VIF_GUARD_PROC_BRIDGE)) ctx.log(action);
  };
  const report = await applyPortChange({ ...ctx, prepareIptables }, { kind: 'up', port });
  const addresses = port.addresses.map((a) => a.cidr).join(' ');
  ctx.log(isGuarded(port, ctx.settings) ? `${port.ifname} (${port.guest}, ${addresses}) protected` : `${port.ifname} (${port.guest}) has no addresses in containers.conf: left unprotected (unaddressed = allow)`);
  for (const warning of advertisementWarnings(report.engine, [port], ctx.settings)) ctx.log(`warning: ${warning}`);
}

/**
 * vps.mount: vzctl runs it on the host before every container starts, with only VEID and
 * VE_CONFFILE (openvz.md 2.3). Loads the host modules the container may use, so a reboot or a
 * firewall reset no longer breaks it, and protects its veths before they exist (rules match by name).
 */
export async function runVzMount(): Promise<number> {
  try {
    const ctx = context();
    const ctid = validateCtid(process.env.VEID ?? '', { source: 'VEID' });
    const ct = readContainer(ctx.settings, ctid, process.env.VE_CONFFILE || undefined);
    const effective = containerEffective(ctx.settings, ct);
    const modules = await loadHostModules(ctx.runner, effective.mask);
    if (modules.length) ctx.log(`container ${ctid}: host modules loaded: ${modules.join(' ')}`);
    for (const port of containerPorts(ctx.settings, ct)) await protect(ctx, port);
    return 0;
  } catch (thrown) {
    const error = toVifGuardError(thrown);
    log(`vps.mount failed for container ${process.env.VEID ?? '?'}: ${error.shortMessage}`);
    return exitCodeFor(error);
  }
}

/**
 * vznet.conf's EXTERNAL_SCRIPT: `init veth <host_ifname> [bridge]` (vzctl), `addif <if> <network>` or
 * `delif <if>` (VZ7), with VEID (openvz.md 4.2). Protects that veth before it joins the bridge.
 */
export async function runVzNet(argv: readonly string[]): Promise<number> {
  try {
    const ctx = context();
    const ctid = validateCtid(process.env.VEID ?? '', { source: 'VEID' });
    const [action = '', a = '', b = ''] = argv;
    const ifname = parseIfname(action === 'init' ? b : a, 'interface', { source: 'vznetcfg arguments' });
    if (action === 'delif') {
      await applyPortChange(ctx, { kind: 'down', ifname });
      ctx.log(`${ifname} released`);
      return 0;
    }
    if (action !== 'init' && action !== 'addif') throw new VifGuardError('INVALID_INPUT', `unknown vznetcfg action \`${action}\` (init, addif or delif)`);
    const ct = readContainer(ctx.settings, ctid);
    const port = containerPorts(ctx.settings, ct).find((p) => p.ifname === ifname);
    if (!port) throw new VifGuardError('INVALID_INPUT', `${ifname} is not a host_ifname in ${ct.file}'s NETIF`);
    await protect(ctx, port);
    return 0;
  } catch (thrown) {
    const error = toVifGuardError(thrown);
    log(`veth hook failed for container ${process.env.VEID ?? '?'}: ${error.shortMessage}`);
    return exitCodeFor(error);
  }
}
