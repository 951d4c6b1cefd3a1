#!/usr/bin/env bash
# bench/cni-add-del.sh: CNI ADD and DEL latency, plumb against the reference bridge plugin.
#
# Inside a sandbox, for each round, attaches N containers (network namespaces made beforehand,
# not timed) one after another to a network of the reference `bridge` plugin with `host-local`
# and `ipMasq` (Debian's containernetworking-plugins, /usr/lib/cni) and N to a network of plumb
# in plugin mode with the same configuration, alternating the two for each container (so a
# busy machine slows both alike), timing every ADD as a runtime sees it (process start to
# exit); then detaches them newest first, alternating again, timing every DEL (so the k-th DEL,
# like the k-th ADD, runs with k containers attached). Reported: the median over rounds of the
# 1st container, and of the 10 containers up to the 100th and up to the 300th.
# plumb answers DEL once the attachment is detached and removes the veth pair after answering
# (the kernel's removal ends with an RCU barrier of about 20 ms that the runtime need not wait
# for); reported as well: how long after the last DEL the last detached pair is gone.
# Target: plumb's median ADD and DEL at least 5 times faster than the reference, under 10 ms,
# and not growing with the number of containers (300th at most 1.5 times the 100th).
#
# Required (Debian packages): containernetworking-plugins, iptables (the reference's ipMasq),
# iproute2, util-linux (unshare), python3, bash >= 5; cargo unless PLUMB is set.
# Usage: bench/cni-add-del.sh          N=300 ROUNDS=3
#        N=100 ROUNDS=1 PLUMB=target/release/plumb bench/cni-add-del.sh
# Everything runs in a fresh user + network + mount namespace with its own /run and /sys
# (bench/lib.sh); the script refuses to run in the network namespace it was started from.
set -euo pipefail
N=${N:-300}
ROUNDS=${ROUNDS:-3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
REF=${REF:-/usr/lib/cni}
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

if ! bench_inside; then
    [[ -x "$REF/bridge" && -x "$REF/host-local" ]] ||
        bench_die "missing the reference plugins in $REF (apt-get install containernetworking-plugins)"
    command -v iptables >/dev/null || bench_die "missing iptables (apt-get install iptables)"
    bench_plumb "$ROOT"
    export N ROUNDS REF
    bench_enter "$HERE/cni-add-del.sh"
fi

# Inside the sandbox from here on.
bench_guard
bench_prepare
ip link set lo up
dir=$BENCH_WORK
((N >= 10)) || bench_die "N must be at least 10"
P2=$((N < 100 ? N : 100))

conf() { # conf TYPE NET BRIDGE SUBNET
    cat <<JSON
{"cniVersion": "1.0.0", "name": "$2", "type": "$1", "bridge": "$3", "isGateway": true,
 "isDefaultGateway": true, "ipMasq": true,
 "ipam": {"type": "host-local", "subnet": "$4", "dataDir": "/run/cni-ipam"}}
JSON
}

# run_one BIN VERB K PREFIX CONF OUT: one invocation for container K (namespace PREFIXK);
# appends "K ms" to the file OUT.
run_one() {
    local bin=$1 verb=$2 k=$3 ns=$4$3 conf=$5 out=$6 t0 t1
    t0=$EPOCHREALTIME
    CNI_COMMAND=$verb CNI_CONTAINERID="bench$k" CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 \
        CNI_PATH="$REF" "$bin" <"$conf" >"$dir/last.json" 2>&1 ||
        { cat "$dir/last.json" >&2; bench_die "$verb of container $k with $bin failed"; }
    t1=$EPOCHREALTIME
    echo "$k $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) * 1000 }')" >>"$out"
}

# Makes the namespaces r1..rN and p1..pN (not timed).
make_ns() {
    for ((k = 1; k <= N; k++)); do echo "netns add r$k"; echo "netns add p$k"; done | ip -batch - >/dev/null
}
drop_ns() {
    for ((k = 1; k <= N; k++)); do echo "netns del r$k"; echo "netns del p$k"; done | ip -batch - >/dev/null
    bench_kernel_done
}

conf bridge refnet cniref0 10.201.0.0/20 >"$dir/ref.json"
conf plumb-cni plumbnet cniplumb0 10.202.0.0/20 >"$dir/plumb.json"
for ((r = 1; r <= ROUNDS; r++)); do
    bench_log "round $r/$ROUNDS: $N containers each, reference bridge + host-local and plumb, alternating"
    make_ns
    for ((k = 1; k <= N; k++)); do
        run_one "$REF/bridge" ADD "$k" r "$dir/ref.json" "$dir/ref.add"
        run_one "$PLUMB" ADD "$k" p "$dir/plumb.json" "$dir/plumb.add"
    done
    for ((k = N; k >= 1; k--)); do
        run_one "$REF/bridge" DEL "$k" r "$dir/ref.json" "$dir/ref.del"
        run_one "$PLUMB" DEL "$k" p "$dir/plumb.json" "$dir/plumb.del"
    done
    # plumb's DEL answers once the attachment is detached and removes the pair after answering:
    # how long after the last DEL answered the last detached pair (`vdel…`) is gone.
    t0=$EPOCHREALTIME
    while ip -o link show | awk -F': ' '$2 ~ /^vdel/ { found = 1 } END { exit !found }'; do
        sleep 0.001
    done
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", (b - a) * 1000 }' >>"$dir/plumb.settle"
    drop_ns
    ip link del cniref0 2>/dev/null || true
    ip link del cniplumb0 2>/dev/null || true
done

# median FILE FIRST LAST: the median of the times of containers FIRST..LAST over all rounds.
median() {
    local vals
    mapfile -t vals < <(awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b { print $2 }' "$1")
    bench_median "${vals[@]}"
}

printf '\ncni-add-del: N=%d containers, median of %d rounds, %d CPUs, %s\n\n' "$N" "$ROUNDS" "$(nproc)" "$(uname -r)"
printf '| container | reference ADD (ms) | plumb ADD (ms) | ADD speed-up | reference DEL (ms) | plumb DEL (ms) | DEL speed-up |\n'
printf '|---|---|---|---|---|---|---|\n'
fail=0
declare -A pa pd
for spec in "1 1 1st" "$((P2 - 9)) $P2 ${P2}th" "$((N - 9)) $N ${N}th"; do
    read -r a b name <<<"$spec"
    ra=$(median "$dir/ref.add" "$a" "$b"); pa[$name]=$(median "$dir/plumb.add" "$a" "$b")
    rd=$(median "$dir/ref.del" "$a" "$b"); pd[$name]=$(median "$dir/plumb.del" "$a" "$b")
    sa=$(bench_ratio "$ra" "${pa[$name]}"); sd=$(bench_ratio "$rd" "${pd[$name]}")
    printf '| %s | %s | %s | %sx | %s | %s | %sx |\n' "$name" "$ra" "${pa[$name]}" "$sa" "$rd" "${pd[$name]}" "$sd"
    awk -v s="$sa" -v t="$sd" -v x="${pa[$name]}" -v y="${pd[$name]}" \
        'BEGIN { exit !(s >= 5 && t >= 5 && x < 10 && y < 10) }' || fail=1
done
mapfile -t settle <"$dir/plumb.settle"
printf '\nplumb DEL answers once the attachment is detached (both ends down and renamed, address,\n'
printf 'elements and record released) and removes the pair after answering; the last detached\n'
printf 'pair was gone %s ms (median of rounds) after the last DEL answered.\n' "$(bench_median "${settle[@]}")"
grow_a=$(bench_ratio "${pa[${N}th]}" "${pa[${P2}th]}")
grow_d=$(bench_ratio "${pd[${N}th]}" "${pd[${P2}th]}")
printf '\nplumb %sth / %sth: ADD %sx, DEL %sx (target <= 1.5)\n' "$N" "$P2" "$grow_a" "$grow_d"
awk -v a="$grow_a" -v d="$grow_d" 'BEGIN { exit !(a <= 1.5 && d <= 1.5) }' || fail=1
if ((fail)); then echo FAIL; exit 1; else echo PASS; fi
