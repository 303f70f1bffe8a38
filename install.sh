#!/bin/bash
# Install vif-guard on a Xen dom0: the hooks, the CLI, the kernel settings it needs.
#
#   ./install.sh                       install (or upgrade) into /usr/local, hook into /etc/xen/scripts
#   ./install.sh --uninstall           remove exactly what was installed, and vif-guard's rules
#   DESTDIR=/tmp/pkg ./install.sh --prefix /usr --no-deps --no-kernel   for packagers
#
# Idempotent. Never overwrites a file it did not install (it keeps a manifest). Works offline
# when node >= 20 and the built bundle (dist/bundle, in release tarballs) or node_modules exist.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: install.sh [options]

Options:
  --prefix DIR        installation prefix (default /usr/local): DIR/lib/vif-guard, DIR/sbin/vif-guard
  --xen-scripts DIR   Xen's hotplug script directory (default /etc/xen/scripts)
  --sysconfdir DIR    where vif-guard.conf, sysctl.d and modules-load.d live (default /etc)
  --systemd-dir DIR   where the systemd units go (default /etc/systemd/system)
  --vz-dir DIR        OpenVZ's config directory (default /etc/vz; hooks are installed when it exists)
  --no-deps           do not apt-get install missing system tools (fail instead)
  --no-kernel         do not load br_netfilter or set sysctls now (files are still installed)
  --uninstall         remove vif-guard's rules and every file this script installed
  --dry-run           say what would be done, change nothing
  -h, --help          this text

Environment:
  DESTDIR             stage the installation under this directory (implies --no-kernel)
EOF
}

PREFIX=/usr/local
XEN_SCRIPTS=/etc/xen/scripts
SYSCONFDIR=/etc
SYSTEMD_DIR=
VZ_DIR=/etc/vz
DEPS=1
KERNEL=1
UNINSTALL=0
DRY_RUN=0
DESTDIR="${DESTDIR:-}"

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --xen-scripts) XEN_SCRIPTS="${2:?--xen-scripts needs a directory}"; shift 2 ;;
        --xen-scripts=*) XEN_SCRIPTS="${1#*=}"; shift ;;
        --sysconfdir) SYSCONFDIR="${2:?--sysconfdir needs a directory}"; shift 2 ;;
        --sysconfdir=*) SYSCONFDIR="${1#*=}"; shift ;;
        --systemd-dir) SYSTEMD_DIR="${2:?--systemd-dir needs a directory}"; shift 2 ;;
        --systemd-dir=*) SYSTEMD_DIR="${1#*=}"; shift ;;
        --vz-dir) VZ_DIR="${2:?--vz-dir needs a directory}"; shift 2 ;;
        --vz-dir=*) VZ_DIR="${1#*=}"; shift ;;
        --no-deps) DEPS=0; shift ;;
        --no-kernel) KERNEL=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$DESTDIR" ] && KERNEL=0
SYSTEMD_DIR=${SYSTEMD_DIR:-$SYSCONFDIR/systemd/system}

for dir in "$PREFIX" "$XEN_SCRIPTS" "$SYSCONFDIR"; do
    case "$dir" in
        /*) ;;
        *) echo "install.sh: $dir must be an absolute path" >&2; exit 2 ;;
    esac
done

SRC=$(cd "$(dirname "$0")" && pwd)
LIBDIR="$PREFIX/lib/vif-guard"
MANIFEST="$DESTDIR/var/lib/vif-guard/install-manifest"

say() { echo "install.sh: $*"; }
die() { echo "install.sh: error: $*" >&2; exit 1; }
run() {
    if [ "$DRY_RUN" = 1 ]; then say "would run: $*"; else "$@"; fi
}

in_manifest() { [ -f "$MANIFEST" ] && grep -Fxq -- "$1" "$MANIFEST"; }

# install_file MODE SOURCE TARGET: refuses to replace a file that this script did not install.
install_file() {
    local mode=$1 source=$2 target=$3
    local staged="$DESTDIR$target"
    if [ -e "$staged" ] && ! in_manifest "$target"; then
        if cmp -s "$source" "$staged"; then
            :
        else
            die "$staged exists and was not installed by vif-guard; move it away or merge it by hand"
        fi
    fi
    if [ -e "$staged" ] && cmp -s "$source" "$staged"; then
        [ "$DRY_RUN" = 1 ] || chmod "$mode" "$staged"
    else
        run install -D -m "$mode" "$source" "$staged"
        say "installed $target"
    fi
    if [ "$DRY_RUN" = 0 ] && ! in_manifest "$target"; then
        mkdir -p "$(dirname "$MANIFEST")"
        echo "$target" >>"$MANIFEST"
    fi
}

# render TEMPLATE: substitute the paths of this installation.
render() {
    sed -e "s|@LIBEXEC@|$LIBDIR/bin|g" -e "s|@NODE@|$NODE|g" -e "s|@LIBDIR@|$LIBDIR|g" -e "s|@SBIN@|$PREFIX/sbin|g" "$1"
}

need_tools() {
    local missing=() tool pkg
    for pair in iptables-nft-restore:iptables iptables-legacy-restore:iptables nft:nftables flock:util-linux \
                modprobe:kmod ip:iproute2; do
        tool=${pair%%:*}; pkg=${pair#*:}
        command -v "$tool" >/dev/null 2>&1 || PATH="/usr/sbin:/sbin:$PATH" command -v "$tool" >/dev/null 2>&1 ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$DEPS" = 0 ]; then
        die "missing system packages: ${missing[*]} (apt-get install ${missing[*]}, or run without --no-deps)"
    fi
    say "installing system packages: ${missing[*]}"
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
        die "apt-get install ${missing[*]} failed (no network? install them from local media)"
}

find_node() {
    local candidate
    for candidate in "${NODE:-}" "$(command -v node 2>/dev/null || true)" /usr/bin/node /usr/local/bin/node; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        if "$candidate" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
            NODE=$(readlink -f "$candidate")
            return 0
        fi
    done
    die "Node.js >= 20 is required (Debian 13 ships it; on Debian 12 use the NodeSource or backports package)"
}

build_bundle() {
    if [ -f "$SRC/dist/bundle/vif-up.cjs" ] && [ -f "$SRC/dist/bundle/vif-guard.cjs" ] &&
        [ -z "$(find "$SRC/lib" "$SRC/hooks" -newer "$SRC/dist/bundle/vif-up.cjs" -name '*.ts' 2>/dev/null | head -1)" ]; then
        return 0
    fi
    [ -f "$SRC/package.json" ] || die "no built bundle in $SRC/dist/bundle and no sources to build it from"
    if [ ! -x "$SRC/node_modules/.bin/tsc" ]; then
        say "installing build dependencies (npm ci)"
        (cd "$SRC" && run npm ci --no-audit --no-fund) || die "npm ci failed (offline? use a release tarball with dist/bundle)"
    fi
    say "building"
    (cd "$SRC" && run npm run --silent build) || die "npm run build failed"
}

have_systemd() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

uninstall() {
    if have_systemd && in_manifest "$SYSTEMD_DIR/vif-guard-sync.service"; then
        run systemctl disable --now vif-guard-sync.service vif-guard-resync.timer >/dev/null 2>&1 || true
    fi
    if [ "$KERNEL" = 1 ] && [ -x "$DESTDIR$PREFIX/sbin/vif-guard" ]; then
        run "$DESTDIR$PREFIX/sbin/vif-guard" remove-rules || say "warning: could not remove vif-guard's rules"
    fi
    if [ ! -f "$MANIFEST" ]; then
        say "nothing to uninstall (no $MANIFEST)"
        return 0
    fi
    local target
    # First remove what vif-guard installed, then put back what it moved aside to chain to.
    while IFS= read -r target; do
        [ -n "$target" ] || continue
        case "$target" in moved:*) continue ;; esac
        if [ -e "$DESTDIR$target" ] || [ -L "$DESTDIR$target" ]; then
            run rm -f -- "$DESTDIR$target"
            say "removed $target"
        fi
    done < <(sort -r "$MANIFEST")
    while IFS= read -r target; do
        case "$target" in
            moved:*)
                local from=${target#moved:} to
                to=${from%.pre-vif-guard}
                if [ -e "$DESTDIR$from" ]; then run mv -f -- "$DESTDIR$from" "$DESTDIR$to"; say "restored $to"; fi ;;
        esac
    done < "$MANIFEST"
    run rm -f -- "$MANIFEST"
    have_systemd && run systemctl daemon-reload || true
    for dir in "$LIBDIR/bin" "$LIBDIR" "$XEN_SCRIPTS/vif-post.d" "$SYSCONFDIR/vif-guard" "$(dirname "$MANIFEST")"; do
        [ -d "$DESTDIR$dir" ] && [ "$DRY_RUN" = 0 ] && rmdir --ignore-fail-on-non-empty "$DESTDIR$dir" 2>/dev/null || true
    done
    say "uninstalled (kernel settings are left as they are: br_netfilter may be used by others)"
}

if [ "$UNINSTALL" = 1 ]; then
    uninstall
    exit 0
fi

need_tools
find_node
build_bundle

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Each entry: a small loader, its bundle, and V8's code cache for the bundle (build.mjs). The cache
# is written again here by the node that will run the hooks: V8 rejects one from another version.
mkdir -p "$TMP/cache"
caches=()
for entry in vif-up vif-down vif-hotplug vz-mount vz-net vif-guard; do
    install_file 0644 "$SRC/dist/bundle/$entry.cjs" "$LIBDIR/$entry.cjs"
    install_file 0644 "$SRC/dist/bundle/$entry.bundle.cjs" "$LIBDIR/$entry.bundle.cjs"
    # V8's caches differ byte for byte from one run to the next: keep an installed one this node accepts.
    state=$("$NODE" "$DESTDIR$LIBDIR/$entry.cjs" --check-code-cache 2>/dev/null || true)
    if [ "${state%% *}" = used ]; then
        caches+=("$LIBDIR/${state#* }")
    else
        cp "$SRC/dist/bundle/$entry.cjs" "$SRC/dist/bundle/$entry.bundle.cjs" "$TMP/cache/"
        if "$NODE" "$TMP/cache/$entry.cjs" --write-code-cache; then
            for cache in "$TMP/cache/$entry".*.v8; do
                install_file 0644 "$cache" "$LIBDIR/${cache##*/}"
                caches+=("$LIBDIR/${cache##*/}")
            done
        else
            say "warning: could not write the code cache of $entry; it will compile at every start"
        fi
    fi
    printf '#!/bin/sh\n# vif-guard %s: installed by install.sh\nexec %s %s/%s.cjs "$@"\n' \
        "$entry" "$NODE" "$LIBDIR" "$entry" >"$TMP/$entry"
    install_file 0755 "$TMP/$entry" "$LIBDIR/bin/$entry"
done
# What an earlier install put in $LIBDIR and this one does not use: ES module bundles, older caches.
if [ -f "$MANIFEST" ]; then
    while IFS= read -r target; do
        case "$target" in "$LIBDIR"/*.mjs | "$LIBDIR"/*.v8) ;; *) continue ;; esac
        printf '%s\n' "${caches[@]}" | grep -Fxq -- "$target" && continue
        run rm -f -- "$DESTDIR$target"
        say "removed $target (no longer used)"
        if [ "$DRY_RUN" != 1 ]; then
            grep -Fxv -- "$target" "$MANIFEST" >"$TMP/manifest" || true
            cat "$TMP/manifest" >"$MANIFEST"
        fi
    done < <(cat "$MANIFEST")
fi
# The demo's raw-frame probe (router advertisements, VLAN frames); it needs python3 at run time.
install_file 0755 "$SRC/templates/probe.py" "$LIBDIR/probe.py"
printf '#!/bin/sh\nexec %s %s/vif-guard.cjs "$@"\n' "$NODE" "$LIBDIR" >"$TMP/vif-guard-cli"
install_file 0755 "$TMP/vif-guard-cli" "$PREFIX/sbin/vif-guard"

# Xen: the vif-post.d hook (sourced by vif-bridge/vif-route/vif-nat; needs the x bit) and the
# standalone script for script=vif-guard. vif-post.d may not exist: no Makefile ever created it.
render "$SRC/templates/xen/vif-guard.hook" >"$TMP/vif-guard.hook"
install_file 0755 "$TMP/vif-guard.hook" "$XEN_SCRIPTS/vif-post.d/vif-guard.hook"
render "$SRC/templates/xen/vif-guard" >"$TMP/vif-guard-script"
install_file 0755 "$TMP/vif-guard-script" "$XEN_SCRIPTS/vif-guard"

# Configuration: the commented template, only if the admin has none.
if [ ! -e "$DESTDIR$SYSCONFDIR/vif-guard/vif-guard.conf" ] || in_manifest "$SYSCONFDIR/vif-guard/vif-guard.conf"; then
    install_file 0644 "$SRC/templates/vif-guard.conf" "$SYSCONFDIR/vif-guard/vif-guard.conf"
else
    say "keeping your $SYSCONFDIR/vif-guard/vif-guard.conf"
fi

# Kernel: physdev rules see bridged packets only with br_netfilter and bridge-nf-call-*=1.
install_file 0644 "$SRC/templates/sysctl-vif-guard.conf" "$SYSCONFDIR/sysctl.d/60-vif-guard.conf"
install_file 0644 "$SRC/templates/modules-load-vif-guard.conf" "$SYSCONFDIR/modules-load.d/vif-guard.conf"
if [ "$KERNEL" = 1 ]; then
    [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || run modprobe br_netfilter ||
        die "modprobe br_netfilter failed: vif-guard's rules would match nothing"
    run sysctl -q -p "$SYSCONFDIR/sysctl.d/60-vif-guard.conf" || die "could not set net.bridge.bridge-nf-call-*tables=1"
fi

# OpenVZ: the global vps.mount (host modules, veth protection before a container starts) and the
# vznet.conf EXTERNAL_SCRIPT (protect each veth before it joins its bridge). Existing ones keep working.
if [ -d "$DESTDIR$VZ_DIR" ]; then
    conf_dir="$VZ_DIR/conf"
    [ -z "$DESTDIR" ] && [ -e "$conf_dir" ] && conf_dir=$(readlink -f "$conf_dir")
    mount_hook="$conf_dir/vps.mount"
    if [ -e "$DESTDIR$mount_hook" ] && ! in_manifest "$mount_hook"; then
        run mv -- "$DESTDIR$mount_hook" "$DESTDIR$mount_hook.pre-vif-guard"
        [ "$DRY_RUN" = 1 ] || echo "moved:$mount_hook.pre-vif-guard" >>"$MANIFEST"
        say "your $mount_hook now runs after vif-guard's, as $mount_hook.pre-vif-guard"
    fi
    render "$SRC/templates/openvz/vps.mount" >"$TMP/vps.mount"
    install_file 0755 "$TMP/vps.mount" "$mount_hook"

    vznet="$VZ_DIR/vznet.conf"
    our_net="$LIBDIR/bin/vznet-hook"
    previous=""
    if [ -f "$DESTDIR$vznet" ]; then
        previous=$( . "$DESTDIR$vznet" >/dev/null 2>&1; printf '%s' "${EXTERNAL_SCRIPT:-}" )
        [ "$previous" = "$our_net" ] && previous=$(cat "$DESTDIR$LIBDIR/vznet-chain" 2>/dev/null || true)
    fi
    if [ -n "$previous" ]; then
        chain="exec \"$previous\" \"\$@\""
        printf '%s' "$previous" >"$TMP/vznet-chain"
        install_file 0644 "$TMP/vznet-chain" "$LIBDIR/vznet-chain"
    else
        # What vznetcfg does when there is no EXTERNAL_SCRIPT: bring the interface up.
        chain='case "$1" in init) exec ip link set "$3" up ;; esac'
    fi
    sed -e "s|@LIBEXEC@|$LIBDIR/bin|g" "$SRC/templates/openvz/vznet-hook" | awk -v chain="$chain" '{ if ($0 == "@CHAIN@") print chain; else print }' >"$TMP/vznet-hook"
    install_file 0755 "$TMP/vznet-hook" "$our_net"
    if [ -f "$DESTDIR$vznet" ] && ! grep -q "^EXTERNAL_SCRIPT=\"$our_net\"\$" "$DESTDIR$vznet"; then
        if ! in_manifest "moved:$vznet.pre-vif-guard"; then
            run cp -p -- "$DESTDIR$vznet" "$DESTDIR$vznet.pre-vif-guard"
            [ "$DRY_RUN" = 1 ] || echo "moved:$vznet.pre-vif-guard" >>"$MANIFEST"
        fi
        if [ "$DRY_RUN" = 0 ]; then
            grep -v '^[[:space:]]*EXTERNAL_SCRIPT=' "$DESTDIR$vznet" >"$TMP/vznet.conf" || true
            echo "EXTERNAL_SCRIPT=\"$our_net\"" >>"$TMP/vznet.conf"
            cat "$TMP/vznet.conf" >"$DESTDIR$vznet"
        fi
        say "$vznet: EXTERNAL_SCRIPT is now vif-guard's${previous:+, which then runs $previous}"
    elif [ ! -f "$DESTDIR$vznet" ]; then
        printf '# Written by vif-guard install.sh.\nEXTERNAL_SCRIPT="%s"\n' "$our_net" >"$TMP/vznet.conf"
        install_file 0644 "$TMP/vznet.conf" "$vznet"
    fi
    if [ ! -e "$DESTDIR$SYSCONFDIR/vif-guard/containers.conf" ] || in_manifest "$SYSCONFDIR/vif-guard/containers.conf"; then
        install_file 0644 "$SRC/templates/containers.conf" "$SYSCONFDIR/vif-guard/containers.conf"
    fi
fi

# Boot-time recovery: sync after the host's firewall is restored, and after it is restarted.
for unit in vif-guard-sync.service vif-guard-resync.service vif-guard-resync.timer; do
    render "$SRC/templates/systemd/$unit" >"$TMP/$unit"
    install_file 0644 "$TMP/$unit" "$SYSTEMD_DIR/$unit"
done
if have_systemd; then
    run systemctl daemon-reload
    # Restarting the unit runs sync: on a first install guests already running get their rules now, and
    # on an upgrade they get this version's (the unit stays active after a run, so `enable --now` would not).
    run systemctl enable vif-guard-sync.service || die "systemctl enable vif-guard-sync.service failed"
    run systemctl restart vif-guard-sync.service || die "systemctl restart vif-guard-sync.service failed (journalctl -u vif-guard-sync)"
    say "enabled vif-guard-sync.service (the periodic vif-guard-resync.timer is installed, not enabled)"
elif [ -z "$DESTDIR" ] && [ "$KERNEL" = 1 ] && command -v xenstore-list >/dev/null 2>&1; then
    run "$PREFIX/sbin/vif-guard" sync || die "vif-guard sync failed"
fi

if [ -d "$DESTDIR/etc/xen" ] || [ -n "$DESTDIR" ]; then
    say "done: every vif with ip= in its config is protected from its next start (vif-guard --help)"
else
    say "done, but /etc/xen does not exist: this host has no Xen toolstack yet"
fi
