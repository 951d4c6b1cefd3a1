#!/usr/bin/env bash
# bench/kernel-done-check.sh: validates how the benchmarks measure "the kernel has finished
# destroying the namespaces" (bench_kernel_done in bench/lib.sh), and shows why the simpler
# "veth sentinel" method is not used.
#
# The method (the "count check"): the kernel charges every network namespace to the user namespace
# that created it and uncharges it at the very end of its destruction (cleanup_net). With the
# sandbox's user namespace limited to 2 network namespaces (/proc/sys/user/max_net_namespaces),
# creating one succeeds exactly when only the sandbox's own namespace is left; bench/netns-gone.py
# attempts it every millisecond (a refused attempt creates nothing).
#
# The rejected method (the "veth sentinel"): right after the tool returns, create a sentinel
# namespace holding one end of a veth pair whose other end is in the sandbox, delete it, and poll
# /sys/class/net until the sandbox's end is gone, on the theory that the kernel destroys
# namespaces in the order they were released. On Linux 6.18 a namespace whose /run/netns mount
# was detached can reach cleanup_net well after the detach returned, so the sentinel can be
# destroyed before namespaces deleted earlier: it finishes too early.
#
# What this script shows, in one sandbox:
#   1. the cost of each method with nothing pending;
#   2. against an independent observer: N namespaces each hold a veth whose other end (vkI) is in
#      the sandbox; they are deleted with one `ip -batch` (netns del x N); a background poller
#      records when the last vkI is gone (the last namespace's devices destroyed), while the
#      method under test runs. Rounds alternate the two methods. A method is sound if it never
#      finishes before the observer; the count check must also finish soon after it;
#   3. against floor-opt's own FLOOR_WAIT=1 figure (when FLOOR_OPT is set): floor-opt down with
#      OPT_DEL=nsonly-brnow (it only unmounts the namespaces, so the veths' host ends live until
#      the kernel destroys the namespaces) and FLOOR_WAIT=1 (it polls until no veth is left in the
#      sandbox) reports finished_ms; rounds alternate with the same down without FLOOR_WAIT,
#      timed by the count check. For contrast, floor-opt's default down (a link-group delete):
#      its veths go synchronously, so FLOOR_WAIT=1 reports finished_ms = returned_ms although the
#      kernel is still destroying the namespaces (which now hold only lo); the count check sees it.
#
# Environment: N=1000, ROUNDS=4 (rounds per method), FLOOR_OPT=PATH (floor-opt, the tuned
# raw-netlink reference program, not part of plumb; part 3 is skipped without it).
# Required: iproute2, util-linux (unshare), python3, bash >= 5, awk; nftables (nft) for floor-opt.
# Exit status: 0 when the count check never finished before the observer (part 2) nor before
# floor-opt's FLOOR_WAIT=1 figure (part 3), 1 otherwise, 2 when the check could not run.
set -euo pipefail

N=${N:-1000}
ROUNDS=${ROUNDS:-4}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

if ! bench_inside; then
    if ! [[ "$N" =~ ^[0-9]+$ ]] || ((N < 1 || N > 1023)); then
        bench_die "N must be 1..1023, got $N"
    fi
    ((BASH_VERSINFO[0] >= 5)) || bench_die "needs bash >= 5 (EPOCHREALTIME)"
    command -v ip >/dev/null || bench_die "missing ip (apt-get install iproute2)"
    if [[ -n "${FLOOR_OPT:-}" ]]; then
        [[ -x "$FLOOR_OPT" && -f "$FLOOR_OPT" ]] || bench_die "FLOOR_OPT=$FLOOR_OPT is not an executable file"
        FLOOR_OPT=$(cd "$(dirname "$FLOOR_OPT")" && pwd)/$(basename "$FLOOR_OPT")
    fi
    export N ROUNDS FLOOR_OPT
    bench_enter "$HERE/kernel-done-check.sh"
fi

bench_guard
bench_prepare
WORK=$BENCH_WORK
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
BAD=0

# observe PREFIX: prints the time at which no /sys/class/net/PREFIX* is left (polls every ~1 ms).
observe() {
    shopt -s nullglob
    local g
    while :; do
        g=(/sys/class/net/"$1"*)
        ((${#g[@]})) || break
        bench_sleep_1ms
    done
    echo "$EPOCHREALTIME"
}

# run_method METHOD: runs it; prints the time it finished.
run_method() {
    if [[ "$1" == count ]]; then
        bench_kernel_done
        echo "$BENCH_DONE_AT"
    else
        bench_veth_sentinel
        echo "$EPOCHREALTIME"
    fi
}

echo "kernel-done check: N=$N, $ROUNDS rounds per method, $(nproc) CPUs, Linux $(uname -r)"
echo

# ---- 1. each method alone ----
for method in count sentinel; do
    idle=()
    for ((i = 0; i < 3 * ROUNDS; i++)); do
        sleep 0.3
        t0=$EPOCHREALTIME
        t1=$(run_method "$method")
        idle+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) * 1000 }')")
    done
    echo "1. $method alone, nothing pending ($((3 * ROUNDS)) runs): median $(bench_median "${idle[@]}") ms, best $(bench_best "${idle[@]}") ms, worst $(bench_max "${idle[@]}") ms"
done
echo

# ---- 2. against an independent observer ----
echo "2. $N namespaces, each holding a veth whose other end (vkI) is in the sandbox, deleted with one ip -batch (ms from the start of the deletes)"
printf '   | %5s | %-8s | %16s | %28s | %15s | %17s |\n' round method "deletes returned" "last vkI gone (observer)" "method finished" "method - observer"
for ((i = 1; i <= N; i++)); do
    echo "netns add c$i"
    echo "link add vk$i type veth peer name eth0 netns c$i"
done >"$WORK/build"
for ((i = 1; i <= N; i++)); do echo "netns del c$i"; done >"$WORK/del"
declare -A worst=([count]=1e9 [sentinel]=1e9)
for ((r = 1; r <= 2 * ROUNDS; r++)); do
    method=count
    ((r % 2)) || method=sentinel
    ip -batch "$WORK/build" >/dev/null
    sleep 1
    t0=$EPOCHREALTIME
    ip -batch "$WORK/del" >/dev/null
    t1=$EPOCHREALTIME
    observe vk >"$WORK/obs" &
    obs_pid=$!
    t2=$(run_method "$method")
    wait "$obs_pid"
    to=$(cat "$WORK/obs")
    diff=$(ms "$to" "$t2")
    printf '   | %5s | %-8s | %16s | %28s | %15s | %17s |\n' "$(((r + 1) / 2))" "$method" "$(ms "$t0" "$t1")" "$(ms "$t0" "$to")" "$(ms "$t0" "$t2")" "$diff"
    worst[$method]=$(awk -v a="${worst[$method]}" -v d="$diff" 'BEGIN { print (d < a) ? d : a }')
    bench_kernel_done # whatever the method, start the next round with nothing pending
    sleep 1
done
for method in count sentinel; do
    if awk -v d="${worst[$method]}" 'BEGIN { exit !(d >= 0) }'; then
        echo "   $method: never finished before the observer (least margin ${worst[$method]} ms)"
    else
        echo "   $method: finished up to $(awk -v d="${worst[$method]}" 'BEGIN { print -d }') ms BEFORE the last namespace's devices were destroyed"
        [[ "$method" == sentinel ]] || BAD=1
    fi
done
echo

# ---- 3. against floor-opt's FLOOR_WAIT=1 ----
if [[ -n "${FLOOR_OPT:-}" ]]; then
    field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" "$2"; }
    echo "3. floor-opt down $N against its own FLOOR_WAIT=1 figure (ms from the start of floor-opt down)"
    printf '   | %5s | %-12s | %-11s | %11s | %25s | %21s |\n' round OPT_DEL FLOOR_WAIT returned_ms "finished_ms (FLOOR_WAIT)" "count check finished"
    for mode in nsonly-brnow group; do
        wait_fin=() count_fin=()
        for ((r = 1; r <= ROUNDS; r++)); do
            for fw in 1 0; do
                "$FLOOR_OPT" up "$N" 2>/dev/null
                sleep 1
                t0=$EPOCHREALTIME
                OPT_DEL=$mode FLOOR_WAIT=$fw "$FLOOR_OPT" down "$N" 2>"$WORK/phases"
                bench_kernel_done
                ret=$(field returned_ms "$WORK/phases")
                fin=$(field finished_ms "$WORK/phases")
                cnt=$(ms "$t0" "$BENCH_DONE_AT")
                if ((fw)); then
                    wait_fin+=("$fin")
                    # the count check runs after floor-opt's own wait: it must not be earlier
                    awk -v c="$cnt" -v f="$fin" 'BEGIN { exit !(c >= f) }' || BAD=1
                else
                    count_fin+=("$cnt")
                fi
                printf '   | %5s | %-12s | %-11s | %11s | %25s | %21s |\n' "$r" "$mode" "$fw" "$ret" "${fin:-NA}" "$cnt"
                sleep 1
            done
        done
        echo "   $mode: median finished_ms with FLOOR_WAIT=1: $(bench_median "${wait_fin[@]}") ms; median count-check finish without it: $(bench_median "${count_fin[@]}") ms"
    done
    echo
fi

if ((BAD)); then
    echo "FAIL: the count check finished before the kernel was done"
    exit 1
fi
echo "OK: the count check never finished before the kernel was done"
