#!/usr/bin/env bash
# bench/nat-1000.sh: what NAT and port publishing cost on top of a plain network.
#
# Builds a 1000-member network twice per round, inside a sandbox: once plain, once with
# `nat = true` and 10 published ports, and reports the median `plumb up` times and the number
# of nftables rules (which must not depend on the member count). Target: NAT + publishing cost
# at most 10% more than the plain network.
#
# Required (Debian packages): nftables (nft), iproute2, util-linux (unshare), python3, bash >= 5;
# cargo unless PLUMB is set.
# Usage: bench/nat-1000.sh        N=1000 ROUNDS=3
#        N=200 ROUNDS=5 PLUMB=target/release/plumb bench/nat-1000.sh
# Everything runs in a fresh user + network + mount namespace with its own /run and /sys
# (bench/lib.sh); the script refuses to run in the network namespace it was started from.
# Between runs it waits until the kernel has destroyed the previous lab's namespaces.
set -euo pipefail
N=${N:-1000}
ROUNDS=${ROUNDS:-3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

if ! bench_inside; then
    command -v nft >/dev/null || bench_die "missing nft (apt-get install nftables)"
    bench_plumb "$ROOT"
    export N ROUNDS
    bench_enter "$HERE/nat-1000.sh"
fi

# Inside the sandbox from here on.
bench_guard
bench_prepare
dir=$BENCH_WORK
members="\"c[1..$N]\""
cat > "$dir/plain.toml" <<TOML
name = "natbench"
[networks.nb0]
subnet = "10.200.0.0/20"
members = [$members]
TOML
pubs=$(for i in $(seq 1 10); do printf '"%d:c%d:80/tcp",' $((8000 + i)) "$i"; done)
cat > "$dir/nat.toml" <<TOML
name = "natbench"
[networks.nb0]
subnet = "10.200.0.0/20"
members = [$members]
nat = true
publish = [${pubs%,}]
TOML

time_up() {
  local t0
  t0=$EPOCHREALTIME; "$PLUMB" up "$1" >/dev/null
  bench_elapsed "$t0" "$EPOCHREALTIME"
}
# Removes the lab and waits until the kernel has destroyed its namespaces.
down() { "$PLUMB" down natbench >/dev/null; bench_kernel_done; sleep 1; }

plain=(); nat=()
rules=0
for ((r = 1; r <= ROUNDS; r++)); do
  plain+=("$(time_up "$dir/plain.toml")"); down
  nat+=("$(time_up "$dir/nat.toml")")
  rules=$(nft -a list table inet plumb-natbench | grep -c -E '^\s+(ip|fib|iifname|oifname|meta|tcp|udp)')
  down
done
p=$(bench_median "${plain[@]}")
n=$(bench_median "${nat[@]}")
over=$(awk "BEGIN{printf \"%.1f\", ($n / $p - 1) * 100}")
printf '\nnat-%d: median of %d rounds, %d CPUs, %s\n\n' "$N" "$ROUNDS" "$(nproc)" "$(uname -r)"
printf '| lab | plumb up (s) |\n|---|---|\n| plain network | %.3f |\n| nat = true + 10 published ports | %.3f |\n\n' "$p" "$n"
printf 'overhead: %s%% (target <= 10%%); nftables rules in the lab table: %d (members: %d)\n' "$over" "$rules" "$N"
if awk "BEGIN{exit !($over <= 10)}"; then echo PASS; else echo FAIL; exit 1; fi
