#!/usr/bin/env bash
# bench/nat-1000.sh: what NAT and port publishing cost on top of a plain network.
#
# Builds a 1000-member network twice per round, inside a sandbox: once plain, once with
# `nat = true` and 10 published ports, and reports the median `plumb up` times and the number
# of nftables rules (which must not depend on the member count). Target: NAT + publishing cost
# at most 10% more than the plain network.
#
# Required (Debian packages): nftables (nft), util-linux (unshare); cargo unless PLUMB is set.
# Usage: bench/nat-1000.sh        N=1000 ROUNDS=3
#        N=200 ROUNDS=5 PLUMB=target/release/plumb bench/nat-1000.sh
# Everything runs in a fresh user + network + mount namespace with its own /run.
set -euo pipefail
N=${N:-1000}
ROUNDS=${ROUNDS:-3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

if [ "${PLUMB_BENCH_INSIDE:-}" != 1 ]; then
  if [ -z "${PLUMB:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p plumb-cli)
    PLUMB="$ROOT/target/release/plumb"
  fi
  export PLUMB N ROUNDS PLUMB_BENCH_INSIDE=1
  exec "$PLUMB" sandbox -- bash "${BASH_SOURCE[0]}"
fi

# Inside the sandbox from here on.
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net 2>/dev/null || true)" ] || { echo "not in a sandbox" >&2; exit 2; }
dir=$(mktemp -d)
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

now() { date +%s.%N; }
time_up() {
  local t0 t1
  t0=$(now); "$PLUMB" up "$1" >/dev/null; t1=$(now)
  echo "$t1 - $t0" | bc -l 2>/dev/null || awk "BEGIN{print $t1 - $t0}"
}
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

plain=(); nat=()
rules=0
for r in $(seq 1 "$ROUNDS"); do
  plain+=("$(time_up "$dir/plain.toml")"); "$PLUMB" down natbench >/dev/null; sleep 3
  nat+=("$(time_up "$dir/nat.toml")")
  rules=$(nft -a list table inet plumb-natbench | grep -c -E '^\s+(ip|fib|iifname|oifname|meta|tcp|udp)')
  "$PLUMB" down natbench >/dev/null; sleep 3
done
p=$(printf '%s\n' "${plain[@]}" | median)
n=$(printf '%s\n' "${nat[@]}" | median)
over=$(awk "BEGIN{printf \"%.1f\", ($n / $p - 1) * 100}")
printf '\nnat-%d: median of %d rounds, 2 CPUs, %s\n\n' "$N" "$ROUNDS" "$(uname -r)"
printf '| lab | plumb up (s) |\n|---|---|\n| plain network | %.3f |\n| nat = true + 10 published ports | %.3f |\n\n' "$p" "$n"
printf 'overhead: %s%% (target <= 10%%); nftables rules in the lab table: %d (members: %d)\n' "$over" "$rules" "$N"
awk "BEGIN{exit !($over <= 10)}" && echo PASS || { echo FAIL; exit 1; }
