#!/usr/bin/env bash
# bench/star-1000.sh: plumb against the tuned reference and against one `ip` command per step,
# on a star of N namespaces on one bridge (examples/star-1000.toml at the default N=1000).
#
# Required (Debian packages): iproute2 (ip), time (/usr/bin/time, for peak RSS), util-linux
# (unshare), iputils-ping (ping), nftables (nft, used by floor-opt), python3 (bench/netns-gone.py),
# bash >= 5, mawk or gawk; cargo to build plumb unless PLUMB is set.
#
# Usage:
#   FLOOR_OPT=/work/floor/target/release/floor-opt bench/star-1000.sh
#
# Environment:
#   FLOOR_OPT=PATH   floor-opt, the tuned raw-netlink reference program (not part of plumb): the
#                    same star built with raw netlink and every tuning found so far. Required:
#                    the script stops with status 2 if it is unset or not executable, unless
#                    NO_FLOOR=1 (then the ratio targets are not evaluated).
#   ROUNDS=5         rounds; each runs plumb and floor-opt once, alternating which goes first.
#   N=1000           members (1..1023: a bridge takes at most 1023 ports here).
#   BASELINE=ip-n    the one-`ip`-per-step lab, run once after the rounds: `ip -n cI ...` (ip-n,
#                    which flatters the baseline), `ip netns exec cI ip ...` (seed, the seed's
#                    literal way), or none.
#   PLUMB=PATH       a prebuilt plumb (default: cargo build --release -p plumb-cli, then
#                    target/release/plumb).
#   REPORT_ONLY=1    report whether the targets are met but exit 0 anyway (work in progress).
#   PAUSE=1          seconds of rest after each teardown (after the kernel has finished).
#
# Everything runs inside a fresh user + network + mount namespace with its own /run and /sys
# (bench/lib.sh): nothing on the machine's network is touched.
#
# What is measured, in one run and one sandbox, for plumb, floor-opt and the ip baseline:
#   up                      wall time of `plumb up FILE` / `floor-opt up N` / the ip loop.
#   up, data path ready     wall time until every bridge port is forwarding: after the command
#                           returns, the kernel still has to process each veth end's carrier change
#                           (linkwatch: at most 100 devices per run, runs paced up to a second apart
#                           while other events are pending); until then the member's bridge port is
#                           disabled and the member unreachable. Polled with `bridge link show`
#                           every ~20 ms. Not a target, but it is when the lab can be used.
#   up again (plumb only)   a second `plumb up FILE`, which finds nothing to do.
#   down, returned          wall time until the `down` command (or the ip loop) returns.
#   down, kernel finished   wall time until the kernel has also destroyed every namespace the
#                           teardown released. Deleting a namespace only releases it: the kernel
#                           destroys it afterwards on its `netns` workqueue (cleanup_net), so
#                           `plumb down` and floor-opt return while the kernel is still at work,
#                           whereas the ip baseline's `ip link del` per member waits for the
#                           kernel each time. Right after the command returns, the script limits
#                           the sandbox's user namespace to 2 network namespaces
#                           (/proc/sys/user/max_net_namespaces) and attempts to create one every
#                           millisecond (bench/netns-gone.py): the kernel uncharges a namespace at
#                           the very end of its destruction, so the first attempt that succeeds
#                           proves only the sandbox's own namespace is left. The clock stops there.
#                           With nothing pending the check costs well under a millisecond (printed
#                           with the results). bench/kernel-done-check.sh validates the method
#                           against an independent observer and floor-opt's own FLOOR_WAIT=1, and
#                           shows why the simpler "veth sentinel" method finishes too early here.
#   peak RSS                /usr/bin/time -f %M, the largest over all plumb runs.
# Every lab is checked through `ip` (namespace and bridge-port counts, two pings) after `up`,
# and the sandbox is checked empty after `down`. Best and median over the rounds are reported.
#
# Targets (what the work is heading for): plumb's up, down (returned) and down (kernel finished)
# each at most 1.2x floor-opt's (best of the rounds against best of the rounds), and plumb's peak
# RSS under 32 MiB. Exit status: 0 when every target is met, 1 when one is not (0 with
# REPORT_ONLY=1), 2 when the benchmark could not run.
set -euo pipefail

N=${N:-1000}
ROUNDS=${ROUNDS:-5}
BASELINE=${BASELINE:-ip-n}
PAUSE=${PAUSE:-1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
MAX_RATIO=1.2
MAX_RSS_KIB=$((32 * 1024))
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

if ! bench_inside; then
    if ! [[ "$N" =~ ^[0-9]+$ ]] || ((N < 1 || N > 1023)); then
        bench_die "N must be 1..1023 (one bridge), got $N"
    fi
    if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || ((ROUNDS < 1)); then
        bench_die "ROUNDS must be a positive integer, got $ROUNDS"
    fi
    [[ "$BASELINE" =~ ^(ip-n|seed|none)$ ]] || bench_die "BASELINE must be ip-n, seed or none, got $BASELINE"
    ((BASH_VERSINFO[0] >= 5)) || bench_die "needs bash >= 5 (EPOCHREALTIME)"
    for tool in ip bridge unshare ping awk python3; do
        command -v "$tool" >/dev/null || bench_die "missing $tool (apt-get install iproute2 util-linux iputils-ping python3)"
    done
    [[ -x /usr/bin/time ]] || bench_die "missing /usr/bin/time (apt-get install time)"
    if [[ "${NO_FLOOR:-}" == 1 ]]; then
        FLOOR_OPT=
    else
        [[ -n "${FLOOR_OPT:-}" ]] || bench_die "FLOOR_OPT is not set: point it at floor-opt, the tuned raw-netlink reference program (not part of plumb), built with cargo build --release; or set NO_FLOOR=1 to skip it"
        [[ -x "$FLOOR_OPT" && -f "$FLOOR_OPT" ]] || bench_die "FLOOR_OPT=$FLOOR_OPT is not an executable file"
        command -v nft >/dev/null || bench_die "missing nft, which floor-opt runs (apt-get install nftables)"
        FLOOR_OPT=$(cd "$(dirname "$FLOOR_OPT")" && pwd)/$(basename "$FLOOR_OPT")
    fi
    bench_plumb "$ROOT"
    export FLOOR_OPT N ROUNDS BASELINE PAUSE REPORT_ONLY
    bench_enter "$HERE/star-1000.sh"
fi

# ---- inside the sandbox from here on -------------------------------------------------------
bench_guard
bench_prepare
WORK=$BENCH_WORK

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

# Member I's address in plumb's lab: the subnet's (I+1)-th address, as the network allocates them.
member_addr() { local a=$(($1 + 1)); echo "10.200.$((a / 256)).$((a % 256))"; }
# Member I's address in floor-opt's lab (its bridge bstar0 has 10.88.0.1/16).
floor_addr() { echo "10.88.$(($1 / 250)).$(($1 % 250 + 2))"; }

# One ping from namespace $1 to $2, tried five times: right after a big lab comes up, a first
# ARP request on a 1000-port bridge is occasionally lost.
ping_from() {
    local try
    for try in 1 2 3 4 5; do
        ip netns exec "$1" ping -n -c 1 -W 3 "$2" >/dev/null && return 0
        echo "bench: ping $1 -> $2 failed (try $try)" >&2
    done
    echo "bench: $1's neighbours: $(ip -n "$1" neigh | tr '\n' ';')" >&2
    echo "bench: $1: $(ip -n "$1" -br link | tr '\n' ';') $(ip -n "$1" -br addr | tr '\n' ';')" >&2
    local dst
    dst=$(ip -o addr show to "$2" 2>/dev/null | awk '{print $2}')
    [[ -n "$dst" ]] || for dst in $(ip netns list | awk '{print $1}'); do
        ip -n "$dst" -o addr show to "$2" | grep -q . && break
    done
    echo "bench: $2 is on ${dst:-?}: $(ip -n "$dst" -br link 2>/dev/null | tr '\n' ';') $(ip -n "$dst" -s link show eth0 2>/dev/null | tr -s ' \n' ' ')" >&2
    echo "bench: ports not forwarding: $(bridge link show | grep -cv forwarding)" >&2
    return 1
}

# check_star WHO BRIDGE GATEWAY LAST-ADDRESS: the star through ip, whoever built it.
check_star() {
    local who=$1 br=$2 gw=$3 last=$4 ns ports
    ns=$(ip netns list | wc -l)
    ports=$(ip -o link show master "$br" | wc -l)
    [[ "$ns" == "$N" ]] || bench_die "$who: $ns namespaces, expected $N"
    [[ "$ports" == "$N" ]] || bench_die "$who: $ports ports on $br, expected $N"
    ping_from c1 "$gw" || bench_die "$who: c1 cannot ping the gateway $gw"
    ping_from c1 "$last" || bench_die "$who: c1 cannot ping c$N ($last)"
}

check_empty() {
    local who=$1 left
    [[ -z "$(ip netns list)" ]] || bench_die "$who: namespaces left after teardown"
    left=$(ip -o link show | wc -l)
    [[ "$left" == 1 ]] || bench_die "$who: $left interfaces left in the sandbox after teardown (expected only lo)"
}

# timed_down OUT CMD...: sets DOWN_RET (until CMD returns) and DOWN_FIN (until the kernel has
# destroyed the namespaces), and BENCH_RSS_KIB.
timed_down() {
    bench_run_timed "$@"
    DOWN_RET=$BENCH_SECS
    bench_kernel_done
    DOWN_FIN=$(bench_elapsed "$BENCH_T0" "$BENCH_DONE_AT")
}

P_UP=() P_READY=() P_NOOP=() P_RET=() P_FIN=() P_RSS=()
F_UP=() F_READY=() F_RET=() F_FIN=() F_RSS=()

plumb_round() {
    bench_run_timed "$WORK/plumb.out" "$PLUMB" up "$FILE"
    P_UP+=("$BENCH_SECS") P_RSS+=("$BENCH_RSS_KIB")
    bench_wait_ports_forwarding
    P_READY+=("$(bench_elapsed "$BENCH_T0" "$BENCH_READY_AT")")
    check_star plumb "$BRIDGE" "$GATEWAY" "$(member_addr "$N")"
    bench_run_timed "$WORK/plumb.out" "$PLUMB" up "$FILE"
    P_NOOP+=("$BENCH_SECS") P_RSS+=("$BENCH_RSS_KIB")
    timed_down "$WORK/plumb.out" "$PLUMB" down "$FILE"
    P_RET+=("$DOWN_RET") P_FIN+=("$DOWN_FIN") P_RSS+=("$BENCH_RSS_KIB")
    check_empty plumb
    bench_log "  plumb:     up ${P_UP[-1]} s (ports forwarding ${P_READY[-1]} s), up again ${P_NOOP[-1]} s, down ${DOWN_RET} s (kernel finished ${DOWN_FIN} s)"
    sleep "$PAUSE"
}

floor_round() {
    bench_run_timed "$WORK/floor.out" "$FLOOR_OPT" up "$N"
    F_UP+=("$BENCH_SECS") F_RSS+=("$BENCH_RSS_KIB")
    bench_wait_ports_forwarding
    F_READY+=("$(bench_elapsed "$BENCH_T0" "$BENCH_READY_AT")")
    check_star floor-opt bstar0 10.88.0.1 "$(floor_addr "$N")"
    timed_down "$WORK/floor.out" "$FLOOR_OPT" down "$N"
    F_RET+=("$DOWN_RET") F_FIN+=("$DOWN_FIN") F_RSS+=("$BENCH_RSS_KIB")
    check_empty floor-opt
    bench_log "  floor-opt: up ${F_UP[-1]} s (ports forwarding ${F_READY[-1]} s), down ${DOWN_RET} s (kernel finished ${DOWN_FIN} s)"
    sleep "$PAUSE"
}

CPUS=$(nproc)
bench_log "N=$N, $ROUNDS rounds, $CPUS CPUs, kernel $(uname -r), plumb $PLUMB, file $FILE, floor-opt ${FLOOR_OPT:-(skipped: NO_FLOOR=1)}"
DONE_MS=$(bench_kernel_done_cost_ms 5)
bench_log "kernel-done check alone (nothing pending): ${DONE_MS} ms (median of 5)"

for ((r = 1; r <= ROUNDS; r++)); do
    bench_log "round $r/$ROUNDS"
    if [[ -z "$FLOOR_OPT" ]]; then
        plumb_round
    elif ((r % 2)); then
        plumb_round
        floor_round
    else
        floor_round
        plumb_round
    fi
done

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

IP_UP=- IP_READY=- IP_RET=- IP_FIN=-
if [[ "$BASELINE" != none ]]; then
    bench_log "ip up ($((8 * N + 3)) commands, $BASELINE)"
    t0=$EPOCHREALTIME
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
    IP_UP=$(bench_elapsed "$t0" "$EPOCHREALTIME")
    bench_wait_ports_forwarding
    IP_READY=$(bench_elapsed "$t0" "$BENCH_READY_AT")
    check_star ip "$BRIDGE" "$GATEWAY" "$(member_addr "$N")"

    bench_log "ip down ($((2 * N + 1)) commands)"
    t0=$EPOCHREALTIME
    for ((i = 1; i <= N; i++)); do
        ip link del "veth$i"
        ip netns del "c$i"
    done
    ip link del "$BRIDGE"
    IP_RET=$(bench_elapsed "$t0" "$EPOCHREALTIME")
    bench_kernel_done
    IP_FIN=$(bench_elapsed "$t0" "$BENCH_DONE_AT")
    check_empty ip
    bench_log "  ip:        up $IP_UP s (ports forwarding $IP_READY s), down $IP_RET s (kernel finished $IP_FIN s)"
fi

# ---- report ----
stat_or_dash() { if (($# > 1)); then "$1" "${@:2}"; else echo -; fi; }
PEAK=$(bench_max "${P_RSS[@]}")
P_UP_B=$(bench_best "${P_UP[@]}") P_UP_M=$(bench_median "${P_UP[@]}")
P_RDY_B=$(bench_best "${P_READY[@]}") P_RDY_M=$(bench_median "${P_READY[@]}")
P_NOOP_B=$(bench_best "${P_NOOP[@]}") P_NOOP_M=$(bench_median "${P_NOOP[@]}")
P_RET_B=$(bench_best "${P_RET[@]}") P_RET_M=$(bench_median "${P_RET[@]}")
P_FIN_B=$(bench_best "${P_FIN[@]}") P_FIN_M=$(bench_median "${P_FIN[@]}")
F_UP_B=$(stat_or_dash bench_best "${F_UP[@]}") F_UP_M=$(stat_or_dash bench_median "${F_UP[@]}")
F_RDY_B=$(stat_or_dash bench_best "${F_READY[@]}") F_RDY_M=$(stat_or_dash bench_median "${F_READY[@]}")
F_RET_B=$(stat_or_dash bench_best "${F_RET[@]}") F_RET_M=$(stat_or_dash bench_median "${F_RET[@]}")
F_FIN_B=$(stat_or_dash bench_best "${F_FIN[@]}") F_FIN_M=$(stat_or_dash bench_median "${F_FIN[@]}")
F_PEAK=$(stat_or_dash bench_max "${F_RSS[@]}")

row() { printf '| %-31s | %10s | %12s | %14s | %16s | %16s | %18s | %15s | %15s |\n' "$@"; }
echo
echo "star-$N: $N namespaces on one bridge; $CPUS CPUs, Linux $(uname -r); $ROUNDS rounds alternating plumb and floor-opt; times in seconds"
echo
row step "plumb best" "plumb median" "floor-opt best" "floor-opt median" "plumb/floor best" "plumb/floor median" "ip ($BASELINE)" "ip / plumb best"
row ------------------------------- ---------- ------------ -------------- ---------------- ---------------- ------------------ --------------- ---------------
row up "$P_UP_B" "$P_UP_M" "$F_UP_B" "$F_UP_M" "$(bench_ratio "$P_UP_B" "$F_UP_B")" "$(bench_ratio "$P_UP_M" "$F_UP_M")" "$IP_UP" "$(bench_ratio "$IP_UP" "$P_UP_B")"
row "up (data path ready)" "$P_RDY_B" "$P_RDY_M" "$F_RDY_B" "$F_RDY_M" "$(bench_ratio "$P_RDY_B" "$F_RDY_B")" "$(bench_ratio "$P_RDY_M" "$F_RDY_M")" "$IP_READY" "$(bench_ratio "$IP_READY" "$P_RDY_B")"
row "up again (no change)" "$P_NOOP_B" "$P_NOOP_M" - - - - - -
row "down (until it returns)" "$P_RET_B" "$P_RET_M" "$F_RET_B" "$F_RET_M" "$(bench_ratio "$P_RET_B" "$F_RET_B")" "$(bench_ratio "$P_RET_M" "$F_RET_M")" "$IP_RET" "$(bench_ratio "$IP_RET" "$P_RET_B")"
row "down (until the kernel is done)" "$P_FIN_B" "$P_FIN_M" "$F_FIN_B" "$F_FIN_M" "$(bench_ratio "$P_FIN_B" "$F_FIN_B")" "$(bench_ratio "$P_FIN_M" "$F_FIN_M")" "$IP_FIN" "$(bench_ratio "$IP_FIN" "$P_FIN_B")"
echo
F_PEAK_MIB=-
[[ "$F_PEAK" == - ]] || F_PEAK_MIB=$(bench_mib "$F_PEAK")
echo "peak RSS: plumb $(bench_mib "$PEAK") MiB, floor-opt $F_PEAK_MIB MiB"
echo "'data path ready': until every bridge port forwards (the kernel's linkwatch has caught up); worst round: plumb $(bench_max "${P_READY[@]}") s, floor-opt $(stat_or_dash bench_max "${F_READY[@]}") s."
echo "'until the kernel is done': until the kernel has destroyed every namespace the teardown released (the check alone costs ${DONE_MS} ms)."
echo

VERDICT=PASS
target() { # target NAME VALUE LIMIT UNIT: VALUE <= LIMIT (or < for RSS)
    local ok
    if [[ "$2" == - ]]; then
        printf '  %-44s %8s  (not measured)\n' "$1" "-"
        return
    fi
    if [[ "$4" == " MiB" ]]; then
        ok=$(awk -v v="$2" -v l="$3" 'BEGIN { print (v < l) ? "met" : "NOT MET" }')
    else
        ok=$(awk -v v="$2" -v l="$3" 'BEGIN { print (v <= l) ? "met" : "NOT MET" }')
    fi
    [[ "$ok" == met ]] || VERDICT=FAIL
    printf '  %-44s %8s%s  %s\n' "$1" "$2" "$4" "$ok"
}
echo "targets (best against best):"
target "up <= ${MAX_RATIO}x floor-opt" "$(bench_ratio "$P_UP_B" "$F_UP_B")" "$MAX_RATIO" x
target "down (returned) <= ${MAX_RATIO}x floor-opt" "$(bench_ratio "$P_RET_B" "$F_RET_B")" "$MAX_RATIO" x
target "down (kernel done) <= ${MAX_RATIO}x floor-opt" "$(bench_ratio "$P_FIN_B" "$F_FIN_B")" "$MAX_RATIO" x
target "plumb peak RSS < $((MAX_RSS_KIB / 1024)) MiB" "$(bench_mib "$PEAK")" "$((MAX_RSS_KIB / 1024))" " MiB"
[[ -n "$FLOOR_OPT" ]] || { echo "  (NO_FLOOR=1: the ratio targets were not evaluated)"; }
echo
echo "$VERDICT"
if [[ "$VERDICT" != PASS ]]; then
    [[ "${REPORT_ONLY:-}" == 1 ]] && { echo "(REPORT_ONLY=1: exit status 0)"; exit 0; }
    exit 1
fi
