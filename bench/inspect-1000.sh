#!/usr/bin/env bash
# bench/inspect-1000.sh: `plumb inspect --json` of a machine with 1000 namespaces, against the
# manual way.
#
# Builds star-1000 (1000 namespaces, each cabled to one bridge) inside a sandbox, then, in the
# same run, alternating: `plumb inspect --json` (every namespace found, read over netlink inside
# it, every veth's other end resolved) and a loop of `ip -n NS -j link` + `ip -n NS -j addr` over
# the same namespaces (which reads less: no peers resolved, no routes). Reports medians, the
# ratio and plumb's peak RSS. Targets: at least 40 times faster than the loop; peak RSS < 32 MiB.
# Exit status 0 when both are met, 1 otherwise.
#
# Required (Debian packages): iproute2, util-linux (unshare), time (/usr/bin/time), python3,
# bash >= 5; cargo unless PLUMB is set.
# Usage: bench/inspect-1000.sh        N=1000 ROUNDS=3
#        N=200 ROUNDS=5 PLUMB=target/release/plumb bench/inspect-1000.sh
# Everything runs in a fresh user + network + mount namespace with its own /run and /sys
# (bench/lib.sh); the script refuses to run in the network namespace it was started from.
set -euo pipefail
N=${N:-1000}
ROUNDS=${ROUNDS:-3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

if ! bench_inside; then
    [ -x /usr/bin/time ] || bench_die "missing /usr/bin/time (apt-get install time)"
    bench_plumb "$ROOT"
    export N ROUNDS
    bench_enter "$HERE/inspect-1000.sh"
fi

# Inside the sandbox from here on.
bench_guard
bench_prepare
dir=$BENCH_WORK
cat > "$dir/star.toml" <<TOML
name = "inspbench"
[networks.ib0]
subnet = "10.200.0.0/20"
members = ["c[1..$N]"]
TOML
"$PLUMB" up "$dir/star.toml" >/dev/null
mapfile -t names < <(ip netns list | awk '{print $1}')
((${#names[@]} == N)) || bench_die "expected $N namespaces, found ${#names[@]}"

manual() {
    local ns
    for ns in "${names[@]}"; do
        ip -n "$ns" -j link >/dev/null
        ip -n "$ns" -j addr >/dev/null
    done
}

plumb_t=() ip_t=() rss=()
for ((r = 1; r <= ROUNDS; r++)); do
    bench_run_timed "$dir/out.json" "$PLUMB" inspect --json
    plumb_t+=("$BENCH_SECS") rss+=("$BENCH_RSS_KIB")
    found=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["namespaces"]), sum(1 for n in d["namespaces"] for i in n["interfaces"] if i.get("peer",{}).get("confirmed")))' "$dir/out.json")
    t0=$EPOCHREALTIME; manual; t1=$EPOCHREALTIME
    ip_t+=("$(bench_elapsed "$t0" "$t1")")
    bench_log "round $r: plumb ${plumb_t[-1]} s, ip loop ${ip_t[-1]} s (namespaces, confirmed veth ends: $found)"
done
"$PLUMB" down inspbench >/dev/null
p=$(bench_median "${plumb_t[@]}")
i=$(bench_median "${ip_t[@]}")
ratio=$(bench_ratio "$i" "$p")
peak=$(bench_max "${rss[@]}")
printf '\ninspect-%d: median of %d rounds, %d CPUs, %s\n\n' "$N" "$ROUNDS" "$(nproc)" "$(uname -r)"
printf '| reading %d namespaces | seconds |\n|---|---|\n' "$N"
printf '| plumb inspect --json | %.3f |\n' "$p"
printf '| ip -n NS -j link + ip -n NS -j addr, per namespace | %.3f |\n\n' "$i"
printf 'ip loop / plumb: %sx (target >= 40); plumb peak RSS %s MiB (target < 32); found (namespaces, confirmed veth ends): %s\n' \
    "$ratio" "$(bench_mib "$peak")" "$found"
ok=1
awk "BEGIN{exit !($ratio >= 40)}" || ok=0
((peak < 32 * 1024)) || ok=0
if ((ok)); then echo PASS; else echo FAIL; exit 1; fi
