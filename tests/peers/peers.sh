#!/usr/bin/env bash
# Real peers for the test suite, on loopback: an OCI registry (distribution v2), dockerd 20.10
# (BuildKit of the v0.8 era) and dockerd 26.1 (containerd image store, BuildKit v0.13, buildx 0.13),
# plus cosign 2.5, skopeo, umoci, bubblewrap (with slirp4netns for network steps) and Bazel.
#
#   bash tests/peers/peers.sh up       install what is missing, start what is not running (idempotent)
#   bash tests/peers/peers.sh down     stop everything `up` started
#   bash tests/peers/peers.sh status   print the state file; exit 1 unless every peer answers
#   bash tests/peers/peers.sh install  only install/fetch what is missing (the part that needs apt)
#
# Works as root on Debian 12 (bookworm) and Debian 13 (trixie):
#   - Debian 12: apt gives docker.io 20.10; docker.io/docker-cli 26, docker-buildx 0.13 and cosign 2.5
#     come from trixie's packages, fetched with a private apt configuration (the mirror URI is read
#     from the system's sources at run time) and unpacked with `dpkg -x` (Go programs, libc only).
#   - Debian 13: apt gives docker.io 26, docker-buildx, cosign; dockerd 20.10 is bookworm's docker.io,
#     fetched and unpacked the same way the other way round.
# Each dockerd gets its own containerd (own socket/root/state), its own bridge (dockerd's default
# docker0 can be owned by one daemon only), --iptables=false and its own data/exec root.
#
# Everything lives in $DL_PEERS_DIR (default /var/cache/distroless-peers), outside the git tree:
#   state.env            the state file (KEY='value' lines, shell-sourceable; tests/peers/env.py reads it):
#                        REGISTRY_ADDR (127.0.0.1:PORT, plain HTTP), REGISTRY_VERSION;
#                        DOCKER{20,26}_{HOST,SOCK,CLI,DOCKERD,CONFIG,VERSION,PID,CONTAINERD_SOCK,LOG}
#                        (always call DOCKERnn_CLI with DOCKER_HOST/DOCKER_CONFIG from here, never the
#                        `docker` first on PATH); BUILDX(_VERSION) (a CLI plugin in DOCKER26_CONFIG);
#                        COSIGN(_VERSION), SKOPEO, UMOCI, BWRAP, BAZEL (+ _VERSION), BUSYBOX (static)
#   apt-<suite>/         private apt configuration, lists and downloaded .deb files
#   root-<suite>/        the `dpkg -x` tree of those .deb files
#   registry/ docker20/ docker26/   configs, data, logs, pid files of the running peers
# Environment: DL_PEERS_DIR, DL_PEERS_REGISTRY_PORT (default 5123), DL_PEERS_REFRESH=1 (re-fetch
# the foreign packages), DL_PEERS_DOCKER20_STORAGE (dockerd 20.10's storage driver, default vfs).
set -euo pipefail

STATE_DIR=${DL_PEERS_DIR:-/var/cache/distroless-peers}
REGISTRY_PORT=${DL_PEERS_REGISTRY_PORT:-5123}
STATE_FILE=$STATE_DIR/state.env
READY_TIMEOUT=${DL_PEERS_READY_TIMEOUT:-90}
export DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_MARK="# distroless-peers: no service starts during package installs"

# name  bridge  address (the bridge is created here and handed to dockerd with --bridge)
BRIDGE20=dlpeer20 BRIDGE20_ADDR=172.29.20.1/24
BRIDGE26=dlpeer26 BRIDGE26_ADDR=172.29.26.1/24

log() { echo "peers: $*" >&2; }
die() { echo "peers: ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- the Debian release
# shellcheck disable=SC1091
. /etc/os-release
CODENAME=${VERSION_CODENAME:-}
[ -n "$CODENAME" ] || die "cannot tell the Debian release from /etc/os-release"
if [ "$CODENAME" = bookworm ]; then
    FOREIGN_SUITE=trixie            # where docker 26, buildx, cosign come from
else
    FOREIGN_SUITE=bookworm          # where docker 20.10 comes from
fi
FOREIGN_ROOT=$STATE_DIR/root-$FOREIGN_SUITE

# ---------------------------------------------------------------- apt (system)
APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        apt-get -q -o DPkg::Lock::Timeout=600 update >&2
        APT_UPDATED=1
    fi
}

missing_pkgs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

# No init system runs here: make sure a package's postinst doesn't try to start its service.
policy_rc_d_on() {
    if [ -e "$POLICY_RC_D" ] && ! grep -qF "$POLICY_MARK" "$POLICY_RC_D"; then
        return 0 # somebody else's policy; leave it alone
    fi
    printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" >"$POLICY_RC_D"
    chmod 755 "$POLICY_RC_D"
    trap policy_rc_d_off EXIT
}
policy_rc_d_off() {
    if [ -e "$POLICY_RC_D" ] && grep -qF "$POLICY_MARK" "$POLICY_RC_D"; then
        rm -f "$POLICY_RC_D"
    fi
    trap - EXIT
}

install_system_pkgs() {
    local pkgs=(docker.io containerd runc docker-registry skopeo umoci bubblewrap slirp4netns bazel-bootstrap
        busybox-static iproute2 curl util-linux pigz nginx gcc libc6-dev mmdebstrap default-jdk-headless)
    if [ "$CODENAME" != bookworm ]; then
        # apt's own docker 26 + buildx + cosign; bookworm's dockerd 20.10 needs libdevmapper
        pkgs+=(docker-cli docker-buildx cosign libdevmapper1.02.1 libsystemd0)
    fi
    local need
    need=$(missing_pkgs "${pkgs[@]}")
    [ -z "$need" ] && return 0
    # shellcheck disable=SC2086
    log "installing:" $need
    apt_update_once
    policy_rc_d_on
    # shellcheck disable=SC2086
    apt-get "${APT_OPTS[@]}" install --no-install-recommends $need >&2
    policy_rc_d_off
}

# ---------------------------------------------------------------- apt (private, other suite)
# The mirror URI of the system's own Debian sources: deb822 (debian.sources) or one-line format.
mirror_uri() {
    local f uri=""
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk -v suite="$CODENAME" '
            function flush() { if (!done && deb && hit && uri != "") { print uri, key; done = 1; exit } deb = hit = 0; uri = key = "" }
            /^[[:space:]]*$/ { flush(); next }
            tolower($1) == "types:"  { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
            tolower($1) == "uris:"   { uri = $2 }
            tolower($1) == "signed-by:" && $2 ~ /^\// { key = $2 }
            END { flush() }' "$f")
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri=$(awk -v suite="$CODENAME" '$1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit } }' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || die "no Debian mirror for suite $CODENAME in the apt sources"
    echo "$uri"
}

# Fetch packages of FOREIGN_SUITE into $STATE_DIR/apt-SUITE/debs and unpack them into FOREIGN_ROOT.
# The system's apt state is not touched. Skipped when the unpacked tree is complete.
foreign_pkgs() {
    if [ "$FOREIGN_SUITE" = trixie ]; then
        echo docker.io docker-cli docker-buildx cosign
    else
        echo docker.io
    fi
}

fetch_foreign() {
    local suite=$FOREIGN_SUITE dir=$STATE_DIR/apt-$FOREIGN_SUITE pkgs stamp
    pkgs=$(foreign_pkgs)
    stamp=$FOREIGN_ROOT/.unpacked
    if [ "${DL_PEERS_REFRESH:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$pkgs" ]; then
        return 0
    fi
    local uri key k
    read -r uri key <<<"$(mirror_uri)"
    if [ -z "$key" ] || [ ! -r "$key" ]; then
        for k in /usr/share/keyrings/debian-archive-keyring.pgp /usr/share/keyrings/debian-archive-keyring.gpg; do
            [ -r "$k" ] && key=$k
        done
    fi
    [ -r "$key" ] || die "no Debian archive keyring found"
    log "fetching $pkgs from Debian $suite (private apt configuration)"
    mkdir -p "$dir/etc" "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs"
    printf 'deb [signed-by=%s] %s %s main\n' "$key" "$uri" "$suite" \
        >"$dir/etc/sources.list"
    local o=(-o "Dir::Etc::SourceList=$dir/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o Dir::State::status=/dev/null
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
        -o APT::Sandbox::User=root -o Acquire::Languages=none)
    apt-get -q "${o[@]}" update >&2
    rm -f "$dir"/debs/*.deb
    # shellcheck disable=SC2086
    (cd "$dir/debs" && apt-get -q "${o[@]}" download $pkgs >&2)
    rm -rf "$FOREIGN_ROOT.new"
    mkdir -p "$FOREIGN_ROOT.new"
    local deb
    for deb in "$dir"/debs/*.deb; do
        dpkg -x "$deb" "$FOREIGN_ROOT.new"
    done
    { echo "$pkgs"; (cd "$dir/debs" && ls -1 ./*.deb); } >"$FOREIGN_ROOT.new/.unpacked"
    rm -rf "$FOREIGN_ROOT"
    mv "$FOREIGN_ROOT.new" "$FOREIGN_ROOT"
}

# ---------------------------------------------------------------- binaries and versions
resolve_binaries() {
    if [ "$CODENAME" = bookworm ]; then
        D20_DOCKERD=/usr/sbin/dockerd D20_CLI=/usr/bin/docker D20_BIN=/usr/sbin
        D26_DOCKERD=$FOREIGN_ROOT/usr/sbin/dockerd D26_CLI=$FOREIGN_ROOT/usr/bin/docker D26_BIN=$FOREIGN_ROOT/usr/sbin
        BUILDX=$FOREIGN_ROOT/usr/libexec/docker/cli-plugins/docker-buildx
        COSIGN=$FOREIGN_ROOT/usr/bin/cosign
    else
        D20_DOCKERD=$FOREIGN_ROOT/usr/sbin/dockerd D20_CLI=$FOREIGN_ROOT/usr/bin/docker D20_BIN=$FOREIGN_ROOT/usr/sbin
        D26_DOCKERD=/usr/sbin/dockerd D26_CLI=/usr/bin/docker D26_BIN=/usr/sbin
        BUILDX=/usr/libexec/docker/cli-plugins/docker-buildx
        COSIGN=/usr/bin/cosign
    fi
    CONTAINERD=/usr/bin/containerd CTR=/usr/bin/ctr
    REGISTRY_BIN=/usr/bin/docker-registry
    SKOPEO=/usr/bin/skopeo UMOCI=/usr/bin/umoci BWRAP=/usr/bin/bwrap BAZEL=/usr/bin/bazel
    BUSYBOX=/bin/busybox
    local b
    for b in "$D20_DOCKERD" "$D20_CLI" "$D26_DOCKERD" "$D26_CLI" "$BUILDX" "$COSIGN" "$CONTAINERD" "$CTR" \
        "$REGISTRY_BIN" "$SKOPEO" "$UMOCI" "$BWRAP" "$BAZEL" "$BUSYBOX"; do
        [ -x "$b" ] || die "missing binary $b"
    done
}

# Debian version of package NAME: from the unpacked foreign .deb files, else from dpkg.
pkg_version() {
    local f
    f=$(grep -m1 "^\./$1_" "$FOREIGN_ROOT/.unpacked" 2>/dev/null || true)
    if [ -n "$f" ]; then
        f=${f#./"$1"_}
        f=${f%_*.deb}
        echo "${f//%3a/:}"
    else
        dpkg-query -W -f='${Version}' "$1"
    fi
}

# `want PREFIX OUTPUT`: OUTPUT must mention version PREFIX (e.g. 26.1.)
want() {
    case "$2" in *"$1"*) ;; *) die "unexpected version: wanted $1*, got: $2" ;; esac
}

check_versions() {
    local stamp=$STATE_DIR/versions.env key
    key="$(stat -c '%n %Y %s' "$D20_DOCKERD" "$D26_DOCKERD" "$BUILDX" "$COSIGN" "$REGISTRY_BIN" \
        "$SKOPEO" "$UMOCI" "$BWRAP" "$BAZEL" | md5sum | cut -c1-32)"
    if [ -f "$stamp" ] && grep -qx "VERSIONS_KEY=$key" "$stamp"; then
        # shellcheck disable=SC1090
        . "$stamp"
        return 0
    fi
    V_DOCKERD20=$("$D20_DOCKERD" --version)
    V_DOCKERD26=$("$D26_DOCKERD" --version)
    V_BUILDX=$("$BUILDX" version)
    # Debian's cosign and bazel builds report no version of their own ("devel", "no_version"):
    # run them, and take the version from the package
    "$COSIGN" version >/dev/null 2>&1 || die "$COSIGN does not run"
    V_COSIGN=$(pkg_version cosign)
    V_REGISTRY=$("$REGISTRY_BIN" --version)
    V_SKOPEO=$("$SKOPEO" --version)
    V_UMOCI=$("$UMOCI" --version)
    V_BWRAP=$("$BWRAP" --version)
    "$BAZEL" --version >/dev/null 2>&1 || die "$BAZEL does not run"
    V_BAZEL=$(pkg_version bazel-bootstrap)
    want "version 20.10." "$V_DOCKERD20"
    want "version 26.1." "$V_DOCKERD26"
    want " 0.13." "$V_BUILDX"
    want "2.5." "$V_COSIGN"
    {
        echo "VERSIONS_KEY=$key"
        local v
        for v in V_DOCKERD20 V_DOCKERD26 V_BUILDX V_COSIGN V_REGISTRY V_SKOPEO V_UMOCI V_BWRAP V_BAZEL; do
            printf '%s=%q\n' "$v" "${!v}"
        done
    } >"$stamp"
}

# ---------------------------------------------------------------- processes
# same_root PID: the process sees the same / as this script (a chroot on the same machine has its
# own /var/cache/distroless-peers with the same paths: never touch the other one's processes)
MY_ROOT=$(stat -L -c %d:%i /proc/self/root)
same_root() { [ "$(stat -L -c %d:%i "/proc/$1/root" 2>/dev/null)" = "$MY_ROOT" ]; }

# pid_alive PIDFILE NEEDLE: the pid in PIDFILE runs and its command line mentions NEEDLE
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" && same_root "$pid"
}

# running PID: the process exists and is not a zombie waiting for its reaper
running() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st%% *}" != Z ]
}

# stop_pid PIDFILE NEEDLE: TERM, wait, KILL
stop_pid() {
    local pidfile=$1 needle=$2 pid _
    if pid_alive "$pidfile" "$needle"; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            running "$pid" || break
            sleep 0.2
        done
        if running "$pid"; then
            log "pid $pid did not stop on TERM; killing"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$pidfile"
}

# Processes whose command line mentions NEEDLE (e.g. the shims of one containerd socket).
pids_mentioning() {
    local f pid
    # shellcheck disable=SC2013 # /proc/N/cmdline paths have no spaces
    for f in $(grep -lsF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null); do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        case "$pid" in "$$" | "$BASHPID") continue ;; esac
        if same_root "$pid"; then echo "$pid"; fi
    done
}

# Unmount whatever is left mounted below DIR (netns files, shm, overlay snapshots), deepest first.
umount_below() {
    local dir=$1 m
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}

# wait_ready NAME LOG CMD...: poll CMD until it succeeds; on timeout print LOG's tail and fail.
wait_ready() {
    local name=$1 logf=$2 deadline pidfile=${WAIT_PIDFILE:-}
    shift 2
    deadline=$((SECONDS + READY_TIMEOUT))
    while ! "$@" >/dev/null 2>&1; do
        # the pid spawn just recorded: only whether it still runs, not its command line, which
        # is this script's forked shell until the exec (a busy machine showed that once)
        if [ -n "$pidfile" ] && ! running "$(cat "$pidfile" 2>/dev/null)"; then
            echo "peers: ERROR: $name exited while starting; last lines of $logf:" >&2
            tail -n 40 "$logf" >&2 || true
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "peers: ERROR: $name not ready after ${READY_TIMEOUT}s; last lines of $logf:" >&2
            tail -n 40 "$logf" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
}

# spawn PIDFILE LOG CMD...: run CMD detached (own session, no tty, output to LOG), record its pid.
spawn() {
    local pidfile=$1 logf=$2
    shift 2
    setsid "$@" </dev/null >>"$logf" 2>&1 9>&- &
    echo $! >"$pidfile"
}

# ---------------------------------------------------------------- registry
REG_DIR=$STATE_DIR/registry
registry_ready() {
    curl -fsS --max-time 2 -o /dev/null -D - "http://127.0.0.1:$REGISTRY_PORT/v2/" 2>/dev/null |
        grep -qi '^docker-distribution-api-version: registry/2.0'
}
registry_up() {
    local pidf=$REG_DIR/registry.pid conf=$REG_DIR/config.yml want
    want=$(registry_config)
    if [ "$(cat "$conf" 2>/dev/null)" = "$want" ] && pid_alive "$pidf" "$conf" && registry_ready; then
        return 0
    fi
    stop_pid "$pidf" "$conf"
    if registry_ready; then die "127.0.0.1:$REGISTRY_PORT is taken by another registry (set DL_PEERS_REGISTRY_PORT)"; fi
    mkdir -p "$REG_DIR/data"
    printf '%s\n' "$want" >"$conf"
    log "starting docker-registry on 127.0.0.1:$REGISTRY_PORT"
    : >"$REG_DIR/registry.log"
    spawn "$pidf" "$REG_DIR/registry.log" "$REGISTRY_BIN" serve "$conf"
    WAIT_PIDFILE=$pidf wait_ready registry "$REG_DIR/registry.log" registry_ready
}
registry_config() {
    cat <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
EOF
}
registry_down() { stop_pid "$REG_DIR/registry.pid" "$REG_DIR/config.yml"; }

# ---------------------------------------------------------------- containerd + dockerd
# Layout of one daemon NAME (docker20 / docker26) below $STATE_DIR/NAME:
#   data/ (dockerd --data-root)  run/ (dockerd --exec-root; wiped on each start)
#   containerd/{config.toml,root/,state/,containerd.sock}  docker.sock  cli/ (DOCKER_CONFIG)
#   daemon.json  dockerd.log  dockerd.pid  containerd.log  containerd.pid
bridge_up() {
    local br=$1 addr=$2
    if ! ip link show "$br" >/dev/null 2>&1; then
        ip link add "$br" type bridge
    fi
    if ! ip -4 addr show dev "$br" | grep -qF " ${addr} "; then
        ip addr flush dev "$br"
        ip addr add "$addr" dev "$br"
    fi
    ip link set "$br" up
}
bridge_down() { ip link del "$1" 2>/dev/null || true; }

containerd_ready() { "$CTR" --address "$1" version; }
docker_ready() { [ "$(curl -fsS --max-time 2 --unix-socket "$1" http://localhost/_ping 2>/dev/null)" = OK ]; }

daemon_up() {
    local name=$1 dockerd=$2 bindir=$3 bridge=$4 baddr=$5 daemon_json=$6
    shift 6 # the rest: more dockerd flags
    local d=$STATE_DIR/$name
    local cd_dir=$d/containerd cd_sock=$d/containerd/containerd.sock sock=$d/docker.sock
    local cd_conf args launch
    cd_conf="version = 2
root = \"$cd_dir/root\"
state = \"$cd_dir/state\"
disabled_plugins = [\"io.containerd.grpc.v1.cri\"]
[grpc]
  address = \"$cd_sock\"
[ttrpc]
  address = \"$cd_sock.ttrpc\"
[debug]
  address = \"\"
[metrics]
  address = \"\""
    args=(--config-file "$d/daemon.json" --containerd "$cd_sock"
        --data-root "$d/data" --exec-root "$d/run" --pidfile "$d/dockerd.pid"
        -H "unix://$sock" --iptables=false --ip-forward=false --ip-masq=false --bridge "$bridge" "$@")
    # what this start would be; a running daemon started otherwise is restarted
    launch=$(printf '%s\n' "$CONTAINERD" "$cd_conf" "$bridge $baddr" "$daemon_json" "$dockerd" "${args[@]}")
    if [ "$(cat "$d/launch.txt" 2>/dev/null)" = "$launch" ] &&
        pid_alive "$d/dockerd.pid" "$d/data" && pid_alive "$d/containerd.pid" "$cd_dir/config.toml" &&
        docker_ready "$sock"; then
        return 0
    fi
    daemon_down "$name" "$bridge" keep-bridge
    mkdir -p "$d/data" "$d/cli" "$cd_dir/root"
    rm -rf "$d/run" "$cd_dir/state"
    mkdir -p "$d/run" "$cd_dir/state"
    printf '%s\n' "$launch" >"$d/launch.txt"

    printf '%s\n' "$cd_conf" >"$cd_dir/config.toml"
    log "starting containerd for $name"
    : >"$d/containerd.log"
    spawn "$d/containerd.pid" "$d/containerd.log" "$CONTAINERD" --config "$cd_dir/config.toml"
    WAIT_PIDFILE=$d/containerd.pid \
        wait_ready "containerd ($name)" "$d/containerd.log" containerd_ready "$cd_sock"

    bridge_up "$bridge" "$baddr"
    printf '%s\n' "$daemon_json" >"$d/daemon.json"
    log "starting $name ($dockerd)"
    : >"$d/dockerd.log"
    # dockerd finds docker-proxy (and runc) on PATH: its own package's sbin first.
    # dockerd writes dockerd.pid itself; until it has, watch the pid we started (env execs dockerd)
    spawn "$d/run/spawn.pid" "$d/dockerd.log" env PATH="$bindir:$PATH" "$dockerd" "${args[@]}"
    WAIT_PIDFILE=$d/run/spawn.pid wait_ready "$name" "$d/dockerd.log" docker_ready "$sock"
    pid_alive "$d/dockerd.pid" "$d/data" || die "$name answers but its pid file $d/dockerd.pid is wrong"
}

daemon_down() {
    local name=$1 bridge=$2 keep=${3:-}
    local d=$STATE_DIR/$name p c
    [ -d "$d" ] || return 0
    # dockerd stops its containers on TERM
    stop_pid "$d/dockerd.pid" "$d/data"
    for p in $(pids_mentioning "$d/data"); do # a dockerd whose pid file was lost
        echo "$p" >"$d/stray.pid"
        stop_pid "$d/stray.pid" "$d/data"
    done
    # containers left behind by a dockerd that died: their shims name our containerd socket;
    # a container's init is its shim's child (killing it ends the container's pid namespace)
    for p in $(pids_mentioning "$d/containerd/containerd.sock"); do
        for c in $(pgrep -P "$p" 2>/dev/null); do kill -KILL "$c" 2>/dev/null || true; done
        kill -KILL "$p" 2>/dev/null || true
    done
    stop_pid "$d/containerd.pid" "$d/containerd/config.toml"
    for p in $(pids_mentioning "$d/containerd/"); do kill -KILL "$p" 2>/dev/null || true; done
    umount_below "$d"
    rm -f "$d/docker.sock" "$d/containerd/containerd.sock" "$d/containerd/containerd.sock.ttrpc"
    [ -n "$keep" ] || bridge_down "$bridge"
}

# ---------------------------------------------------------------- state file
write_state() {
    local v20 v26 tmp=$STATE_FILE.tmp
    v20=$(DOCKER_CONFIG=$STATE_DIR/docker20/cli "$D20_CLI" -H "unix://$STATE_DIR/docker20/docker.sock" \
        version --format '{{.Server.Version}}')
    v26=$(DOCKER_CONFIG=$STATE_DIR/docker26/cli "$D26_CLI" -H "unix://$STATE_DIR/docker26/docker.sock" \
        version --format '{{.Server.Version}}')
    want 20.10. "$v20"
    want 26.1. "$v26"
    {
        echo "# distroless real peers; written by tests/peers/peers.sh up on $(date -u +%FT%TZ)"
        kv DEBIAN_CODENAME "$CODENAME"
        kv STATE_DIR "$STATE_DIR"
        kv REGISTRY_ADDR "127.0.0.1:$REGISTRY_PORT"
        kv REGISTRY_PID "$(cat "$REG_DIR/registry.pid")"
        kv REGISTRY_VERSION "$(awk '{ print $3 }' <<<"$V_REGISTRY")"
        local n
        for n in 20 26; do
            local d=$STATE_DIR/docker$n cli dockerd
            [ "$n" = 20 ] && cli=$D20_CLI dockerd=$D20_DOCKERD
            [ "$n" = 26 ] && cli=$D26_CLI dockerd=$D26_DOCKERD
            kv "DOCKER${n}_HOST" "unix://$d/docker.sock"
            kv "DOCKER${n}_SOCK" "$d/docker.sock"
            kv "DOCKER${n}_CLI" "$cli"
            kv "DOCKER${n}_DOCKERD" "$dockerd"
            kv "DOCKER${n}_CONFIG" "$d/cli"
            kv "DOCKER${n}_PID" "$(cat "$d/dockerd.pid")"
            kv "DOCKER${n}_CONTAINERD_SOCK" "$d/containerd/containerd.sock"
            kv "DOCKER${n}_LOG" "$d/dockerd.log"
        done
        kv DOCKER20_VERSION "$v20"
        kv DOCKER26_VERSION "$v26"
        kv DOCKER26_FEATURES containerd-snapshotter
        kv BUILDX "$STATE_DIR/docker26/cli/cli-plugins/docker-buildx"
        kv BUILDX_VERSION "$(awk '{ print $2 }' <<<"$V_BUILDX")"
        kv COSIGN "$COSIGN"
        kv COSIGN_VERSION "$V_COSIGN"
        kv SKOPEO "$SKOPEO"
        kv SKOPEO_VERSION "$(awk '{ print $3 }' <<<"$V_SKOPEO")"
        kv UMOCI "$UMOCI"
        kv UMOCI_VERSION "$(awk '{ print $3 }' <<<"$V_UMOCI")"
        kv BWRAP "$BWRAP"
        kv BWRAP_VERSION "$(awk '{ print $2 }' <<<"$V_BWRAP")"
        kv BAZEL "$BAZEL"
        kv BAZEL_VERSION "$V_BAZEL"
        kv BUSYBOX "$BUSYBOX"
        kv CONTAINERD "$CONTAINERD"
        kv CONTAINERD_VERSION "$("$CONTAINERD" --version | awk '{ print $3 }')"
    } >"$tmp"
    mv "$tmp" "$STATE_FILE"
}
kv() { printf "%s='%s'\n" "$1" "${2//\'/}"; }

# ---------------------------------------------------------------- commands
cmd_install() {
    install_system_pkgs
    fetch_foreign
    resolve_binaries
    check_versions
}

cmd_up() {
    local t0=$SECONDS
    cmd_install
    # DOCKER_CONFIG of each CLI; buildx is a CLI plugin of the 26 CLI
    mkdir -p "$STATE_DIR/docker20/cli" "$STATE_DIR/docker26/cli/cli-plugins"
    [ -f "$STATE_DIR/docker20/cli/config.json" ] || echo '{}' >"$STATE_DIR/docker20/cli/config.json"
    [ -f "$STATE_DIR/docker26/cli/config.json" ] || echo '{}' >"$STATE_DIR/docker26/cli/config.json"
    ln -sfn "$BUILDX" "$STATE_DIR/docker26/cli/cli-plugins/docker-buildx"

    registry_up
    daemon_up docker20 "$D20_DOCKERD" "$D20_BIN" "$BRIDGE20" "$BRIDGE20_ADDR" '{}' \
        --storage-driver "${DL_PEERS_DOCKER20_STORAGE:-vfs}"
    # dockerd 26: the containerd image store (snapshotter overlayfs), as environment.md checked
    daemon_up docker26 "$D26_DOCKERD" "$D26_BIN" "$BRIDGE26" "$BRIDGE26_ADDR" \
        '{"features": {"containerd-snapshotter": true}}'
    write_state
    log "up in $((SECONDS - t0))s; state in $STATE_FILE"
}

cmd_down() {
    registry_down
    daemon_down docker26 "$BRIDGE26"
    daemon_down docker20 "$BRIDGE20"
    rm -f "$STATE_FILE"
    log "down"
}

cmd_status() {
    local rc=0 n
    if [ ! -f "$STATE_FILE" ]; then
        echo "no state file ($STATE_FILE): run 'bash tests/peers/peers.sh up'"
        return 1
    fi
    cat "$STATE_FILE"
    if pid_alive "$REG_DIR/registry.pid" "$REG_DIR/config.yml" && registry_ready; then
        echo "# registry: up"
    else
        echo "# registry: DOWN"; rc=1
    fi
    for n in docker20 docker26; do
        if pid_alive "$STATE_DIR/$n/dockerd.pid" "$STATE_DIR/$n/data" && docker_ready "$STATE_DIR/$n/docker.sock"; then
            echo "# $n: up"
        else
            echo "# $n: DOWN"; rc=1
        fi
    done
    return $rc
}

main() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    local cmd=${1:-}
    case "$cmd" in
        up | down | status | install) ;;
        *) echo "usage: $0 up|down|status|install" >&2; exit 2 ;;
    esac
    mkdir -p "$STATE_DIR"
    CTR=/usr/bin/ctr
    if [ "$cmd" = status ]; then cmd_status; return; fi
    # one up/down at a time on this machine
    # (fd 9 is closed in every daemon spawned, see spawn)
    exec 9>"$STATE_DIR/.lock"
    flock -w 1800 9 || die "another peers.sh holds $STATE_DIR/.lock"
    "cmd_$cmd"
}

main "$@"
