// Run inside a dom0 namespace: prints the lines a full rebuild for these ports would send (none = no drift).
// argv: backend, JSON array of {ifname, mac, ip}.
const [{ buildRuleset }, { parseSave }, { planTable }, { planBridge, readBridge }, { createRunner }, { createIptablesBackend }, { DEFAULT_SETTINGS }, { parseAddressList }] = await Promise.all([
  import('../../dist/lib/rules/build.js'), import('../../dist/lib/backend/save-parse.js'), import('../../dist/lib/backend/diff.js'),
  import('../../dist/lib/backend/nft-bridge.js'), import('../../dist/lib/runner.js'), import('../../dist/lib/backend/iptables.js'),
  import('../../dist/lib/config/settings.js'), import('../../dist/lib/guest/validate.js'),
]);
const [variant, json] = process.argv.slice(2);
const settings = { ...DEFAULT_SETTINGS, backend: variant };
// The nftables backend writes no iptables chains: its iptables side is checked (for leftovers) with iptables-nft.
const engine = variant === 'nftables' ? 'nftables' : 'iptables';
const iptables = variant === 'nftables' ? 'nft' : variant;
const ports = JSON.parse(json).map((p) => ({ ifname: p.ifname, guest: p.guest ?? '-', bridge: p.bridge ?? 'xenbr0', mac: p.mac, addresses: parseAddressList(p.ip, { source: 'drift' }) }));
const runner = createRunner();
const ruleset = buildRuleset(ports, settings, engine);
const lines = [];
for (const table of ruleset.tables) {
  const save = await createIptablesBackend(runner, iptables, 5, table.family).save('filter');
  lines.push(...planTable(parseSave(save, 'filter'), table).lines.map((line) => `ipv${table.family}: ${line}`));
}
const bridge = planBridge(await readBridge(runner, undefined, true), ruleset.bridge);
if (bridge) lines.push(...bridge.trimEnd().split('\n').map((line) => `nft: ${line}`));
console.log(JSON.stringify(lines));
