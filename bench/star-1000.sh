#!/usr/bin/env bash
# bench/star-1000.sh: plumb against one `ip` command per step, on a star of N namespaces on one
# bridge (examples/star-1000.toml at the default N=1000).
#
# Required (Debian packages): iproute2 (ip), time (/usr/bin/time, for peak RSS), util-linux
# (unshare), iputils-ping (ping), bash, gawk or mawk (awk); cargo to build plumb unless PLUMB is set.
#
# Usage:
#   bench/star-1000.sh                 N=1000, builds target/release/plumb first
#   N=100 bench/star-1000.sh           a quick run (any N from 1 to 4000)
#   PLUMB=/path/to/plumb bench/...     a prebuilt binary
#   BASELINE=seed bench/star-1000.sh   the baseline runs commands in a member literally as the
#                                      seed does, `ip netns exec cI ip ...` (slower than the
#                                      default `ip -n cI ...`, so it raises plumb's speedup)
#
# Everything runs inside a fresh user + network + mount namespace with its own tmpfs on /run
# (the script re-executes itself under `unshare`): nothing on the machine's network is touched,
# and the lab's namespaces vanish with the script.
#
# What is measured, in the same run and the same sandbox:
#   plumb:  `plumb up FILE`, a second `plumb up FILE` (nothing to do), `plumb down FILE`; wall
#           time, and peak RSS from /usr/bin/time -f %M.
#   ip:     the same lab built the seed's way, one `ip` command per step (ip netns add; ip link
#           add vethI type veth peer name eth0 netns cI; master; up; addr; route ...) and torn
#           down with `ip link del vethI` + `ip netns del cI` per member. By default commands in a
#           member use `ip -n cI`, not the seed's slower `ip netns exec cI ip`, so the baseline is
#           if anything flattered (BASELINE=seed for the literal form).
# Both labs are checked through `ip` (namespace and bridge-port counts, two pings) before they
# are torn down.
#
# Exit status: 0 if plumb is at least 20x faster than the ip baseline for up and for down and
# its peak RSS stays under 64 MiB; 1 if not; 2 if the benchmark could not run.
set -euo pipefail

N=${N:-1000}
BASELINE=${BASELINE:-ip-n}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
MIN_SPEEDUP=20
MAX_RSS_KIB=$((64 * 1024))

die() { echo "bench: $*" >&2; exit 2; }

if [[ "${PLUMB_BENCH_INSIDE:-}" != 1 ]]; then
    [[ "$N" =~ ^[0-9]+$ ]] && ((N >= 1 && N <= 4000)) || die "N must be 1..4000 (the lab is a /20), got $N"
    [[ "$BASELINE" == ip-n || "$BASELINE" == seed ]] || die "BASELINE must be ip-n or seed, got $BASELINE"
    for tool in ip unshare ping awk; do
        command -v "$tool" >/dev/null || die "missing $tool (apt-get install iproute2 util-linux iputils-ping)"
    done
    [[ -x /usr/bin/time ]] || die "missing /usr/bin/time (apt-get install time)"
    if [[ -z "${PLUMB:-}" ]]; then
        (cd "$ROOT" && cargo build --release --quiet -p plumb-cli) || die "cargo build failed"
        PLUMB=$ROOT/target/release/plumb
    fi
    [[ -x "$PLUMB" ]] || die "no plumb binary at $PLUMB"
    PLUMB=$(cd "$(dirname "$PLUMB")" && pwd)/$(basename "$PLUMB")
    export PLUMB N BASELINE PLUMB_BENCH_INSIDE=1 PLUMB_BENCH_OUTER_NET
    PLUMB_BENCH_OUTER_NET=$(readlink /proc/self/ns/net)
    exec unshare --user --map-root-user --net --mount --propagation private -- bash "$HERE/star-1000.sh"
fi

# ---- inside the sandbox from here on -------------------------------------------------------
[[ "$(readlink /proc/self/ns/net)" != "$PLUMB_BENCH_OUTER_NET" ]] || die "not in a new network namespace; refusing to run"
mount -t tmpfs -o mode=0755 tmpfs /run || die "cannot mount a private /run"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

BRIDGE=br1000
GATEWAY=10.200.0.1
PREFIX=20
if [[ "$N" == 1000 && -f "$ROOT/examples/star-1000.toml" ]]; then
    FILE=$ROOT/examples/star-1000.toml
else
    # The same lab as examples/star-1000.toml, with N members.
    FILE=$WORK/star-$N.toml
    cat >"$FILE" <<TOML
name = "star1000"

[networks.$BRIDGE]
subnet = "10.200.0.0/$PREFIX"
members = ["c[1..$N]"]
TOML
fi

# Member I's address: the subnet's (I+1)-th address, as the network allocates them.
member_addr() { local a=$(($1 + 1)); echo "10.200.$((a / 256)).$((a % 256))"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# One ping from namespace $1 to $2, tried three times: right after a big lab comes up, a first
# ARP request on a 1000-port bridge is occasionally lost.
ping_from() {
    local try
    for try in 1 2 3; do
        ip netns exec "$1" ping -n -c 1 -W 2 "$2" >/dev/null && return 0
        echo "bench: ping $1 -> $2 failed (try $try)" >&2
    done
    return 1
}

# Checks the star through ip, whoever built it; $1 names the builder for messages.
check_star() {
    local who=$1 ns ports
    ns=$(ip netns list | wc -l)
    ports=$(ip -o link show master "$BRIDGE" | wc -l)
    [[ "$ns" == "$N" ]] || die "$who: $ns namespaces, expected $N"
    [[ "$ports" == "$N" ]] || die "$who: $ports ports on $BRIDGE, expected $N"
    ping_from c1 "$GATEWAY" || die "$who: c1 cannot ping the gateway"
    ping_from c1 "$(member_addr "$N")" || die "$who: c1 cannot ping c$N"
}

check_empty() {
    local who=$1
    [[ -z "$(ip netns list)" ]] || die "$who: namespaces left after teardown"
    ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "$who: $BRIDGE left after teardown"
}

# Waits until the kernel has destroyed what a teardown released (deleted namespaces take their
# veths' host ends with them asynchronously), so one phase does not bill the next.
settle() {
    local i
    for i in $(seq 1 600); do
        [[ "$(ip -o link show | wc -l)" == 1 ]] && break
        sleep 0.1
    done
    sleep 2
}

# Runs plumb under /usr/bin/time; sets SECS and RSS_KIB.
timed_plumb() {
    local t0 t1
    t0=$(now)
    /usr/bin/time -f %M -o "$WORK/rss" "$PLUMB" "$@" >"$WORK/plumb.out" 2>&1 \
        || { cat "$WORK/plumb.out" >&2; die "plumb $* failed"; }
    t1=$(now)
    SECS=$(elapsed "$t0" "$t1")
    RSS_KIB=$(tail -n 1 "$WORK/rss")
}

echo "bench: N=$N, $(nproc) CPUs, kernel $(uname -r), plumb $PLUMB, file $FILE" >&2

# ---- plumb ----
echo "bench: plumb up" >&2
timed_plumb up "$FILE"
PLUMB_UP=$SECS PLUMB_UP_RSS=$RSS_KIB
check_star plumb
timed_plumb up "$FILE"
PLUMB_NOOP=$SECS PLUMB_NOOP_RSS=$RSS_KIB
echo "bench: plumb down" >&2
timed_plumb down "$FILE"
PLUMB_DOWN=$SECS PLUMB_DOWN_RSS=$RSS_KIB
check_empty plumb
settle

# ---- one ip command per step ----
# in_member NS CMD...: `ip -n NS CMD...`, or the seed's `ip netns exec NS ip CMD...`.
in_member() {
    local ns=$1
    shift
    if [[ "$BASELINE" == seed ]]; then
        ip netns exec "$ns" ip "$@"
    else
        ip -n "$ns" "$@"
    fi
}

echo "bench: ip up ($((8 * N + 3)) commands, $BASELINE)" >&2
t0=$(now)
ip link add "$BRIDGE" type bridge
ip link set "$BRIDGE" up
ip addr add "$GATEWAY/$PREFIX" dev "$BRIDGE"
for ((i = 1; i <= N; i++)); do
    ip netns add "c$i"
    in_member "c$i" link set lo up
    ip link add "veth$i" type veth peer name eth0 netns "c$i"
    ip link set "veth$i" master "$BRIDGE"
    ip link set "veth$i" up
    in_member "c$i" link set eth0 up
    in_member "c$i" addr add "$(member_addr "$i")/$PREFIX" dev eth0
    in_member "c$i" route add default via "$GATEWAY"
done
t1=$(now)
IP_UP=$(elapsed "$t0" "$t1")
check_star ip

echo "bench: ip down ($((2 * N + 1)) commands)" >&2
t0=$(now)
for ((i = 1; i <= N; i++)); do
    ip link del "veth$i"
    ip netns del "c$i"
done
ip link del "$BRIDGE"
t1=$(now)
IP_DOWN=$(elapsed "$t0" "$t1")
check_empty ip

# ---- report ----
UP_X=$(awk -v a="$IP_UP" -v b="$PLUMB_UP" 'BEGIN { printf "%.1f", a / b }')
DOWN_X=$(awk -v a="$IP_DOWN" -v b="$PLUMB_DOWN" 'BEGIN { printf "%.1f", a / b }')
PEAK=$(printf '%s\n' "$PLUMB_UP_RSS" "$PLUMB_NOOP_RSS" "$PLUMB_DOWN_RSS" | sort -n | tail -n 1)
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

VERDICT=PASS
awk -v x="$UP_X" -v m="$MIN_SPEEDUP" 'BEGIN { exit !(x >= m) }' || VERDICT=FAIL
awk -v x="$DOWN_X" -v m="$MIN_SPEEDUP" 'BEGIN { exit !(x >= m) }' || VERDICT=FAIL
((PEAK < MAX_RSS_KIB)) || VERDICT=FAIL

row() { printf '| %-20s | %9s | %19s | %8s | %14s |\n' "$@"; }
echo
echo "star-$N: $N namespaces on one bridge, $(nproc) CPUs, Linux $(uname -r), baseline $BASELINE"
echo
row step "plumb (s)" "one ip per step (s)" speedup "plumb peak RSS"
row -------------------- --------- ------------------- -------- --------------
row up "$PLUMB_UP" "$IP_UP" "${UP_X}x" "$(mib "$PLUMB_UP_RSS") MiB"
row "up again (no change)" "$PLUMB_NOOP" - - "$(mib "$PLUMB_NOOP_RSS") MiB"
row down "$PLUMB_DOWN" "$IP_DOWN" "${DOWN_X}x" "$(mib "$PLUMB_DOWN_RSS") MiB"
echo
echo "$VERDICT: needs >= ${MIN_SPEEDUP}x for up and for down and peak RSS < 64 MiB (peak $(mib "$PEAK") MiB)"

[[ "$VERDICT" == PASS ]] || exit 1
