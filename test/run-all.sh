#!/bin/bash
# Install what the tests need on a Debian machine (as root), build, and run every test.
# The namespace tests create their own network and mount namespaces and remove them; they never
# touch the host's firewall, sysctls, /etc or interfaces.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test/run-all.sh: run as root (the tests build network namespaces)" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
packages=(iptables nftables ipset iproute2 python3 util-linux kmod dpkg apt bridge-utils procps conntrack systemd)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
# apt-get download of xen-utils-common (the real vif-bridge) and xenstore-utils (the real xenstore
# clients) needs package lists.
if [ ${#missing[@]} -gt 0 ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
    apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "test/run-all.sh: installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build

report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$report" || status=$?
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" || echo "vitest: 0 passed, 1 failed"
exit $status
