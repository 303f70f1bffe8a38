import { VifGuardError } from '../errors.js';
import type { GuestPort } from '../guest/model.js';
import { isGuestName, parseAddressList, parseIfname, parseMac } from '../guest/validate.js';
import type { HotplugRequest } from './hotplug.js';
import type { Xenstore } from './xenstore.js';


/** `backend/vif/5/0` -> `xen:5/0`: the vif's identity whatever it is called now. */
export function xenKey(xenbusPath: string | undefined): string | undefined {
  const match = xenbusPath ? /backend\/vif\/(\d+)\/(\d+)$/.exec(xenbusPath) : null;
  return match ? `xen:${match[1]}/${match[2]}` : undefined;
}

/** `backend/vif/5/0` (or its absolute form) -> domid 5. */
export function domidOf(xenbusPath: string): string | undefined {
  return /backend\/vif\/(\d+)\/\d+$/.exec(xenbusPath)?.[1];
}

/** The name the interface has in dom0 now: vifname when set (the stock scripts rename to it), else vifD.N; taps add -emu. */
export function resolveIfname(request: HotplugRequest, vifname: string | undefined): string {
  if (request.dev) return request.dev;
  const base = vifname ?? request.vif;
  if (!base) throw new VifGuardError('INVALID_INPUT', 'cannot tell which interface this event is for: no --dev, no vifname in xenstore and no $vif');
  const name = request.typeIf === 'tap' ? `${base}-emu` : base;
  return parseIfname(name, request.typeIf === 'tap' ? 'INTERFACE' : 'vifname', { source: 'xenstore' });
}

/** Everything the stock scripts read for a vif, validated: ip and mac and bridge and vifname from xenstore. */
export async function readPortFromXenstore(request: HotplugRequest, xenstore: Xenstore): Promise<GuestPort> {
  const base = request.xenbusPath;
  const node = async (key: string): Promise<string | undefined> => (base ? xenstore.read(`${base}/${key}`) : undefined);
  const domid = base ? domidOf(base) : undefined;
  const [vifname, ip, mac, bridge, name] = await Promise.all([
    node('vifname'),
    node('ip'),
    node('mac'),
    node('bridge'),
    domid ? xenstore.read(`/local/domain/${domid}/name`) : Promise.resolve(undefined),
  ]);
  const origin = (key: string) => ({ source: `xenstore ${base ?? '(no XENBUS_PATH)'}/${key}` });
  const ifname = resolveIfname(request, vifname === undefined || vifname === '' ? undefined : parseIfname(vifname, 'vifname', origin('vifname')));
  // vif-common.sh: ip=$(xenstore_read_default "$XENBUS_PATH/ip" "$ip") -- xenstore wins over the argument.
  const ipText = ip ?? request.ip ?? '';
  const addresses = parseAddressList(ipText, ip !== undefined ? origin('ip') : { source: 'hook argument --ip' });
  // The hook's bridge is what the stock script resolved (xenbrN -> ethN translation included).
  const bridgeName = request.bridge ?? (bridge ? parseIfname(bridge, 'bridge', origin('bridge')) : undefined);
  return {
    ifname,
    guest: request.guest ?? (name && isGuestName(name) ? name : domid ? `domid-${domid}` : '-'),
    bridge: bridgeName,
    mac: mac ? parseMac(mac, origin('mac')) : request.mac,
    addresses,
    // A tap and its vif share the xenstore path; only the vif carries the key.
    key: request.typeIf === 'vif' ? xenKey(base) : undefined,
  };
}
