#!/usr/bin/env bash
# bench/firewall-1000.sh: what a firewall inside every member costs.
#
# The seed's hardening advice is a firewall inside every namespace. This builds star-1000 twice
# per round, inside a sandbox, alternating: once plain, once with
#   [nodes."c[1..1000]".firewall]  ingress = "deny", allow = ["icmp", "tcp/80"]
# (one nf_tables transaction in each of the 1000 namespaces), then runs `up` again on the
# firewalled lab (nothing to do: every table's version mark is read back and matches).
# Reports the median times, the ratio, and plumb's peak RSS over every run.
# Targets: firewalled up <= 1.3x the plain up of the same round set; no-op up < 0.3 s;
# peak RSS < 32 MiB. Exit status 0 when every target is met, 1 otherwise.
#
# Required (Debian packages): iproute2, util-linux (unshare), time (/usr/bin/time), python3,
# bash >= 5; nftables (nft) only to count the rules afterwards; cargo unless PLUMB is set.
# Usage: bench/firewall-1000.sh        N=1000 ROUNDS=3
#        N=200 ROUNDS=5 PLUMB=target/release/plumb bench/firewall-1000.sh
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
    [ -x /usr/bin/time ] || bench_die "missing /usr/bin/time (apt-get install time)"
    bench_plumb "$ROOT"
    export N ROUNDS
    bench_enter "$HERE/firewall-1000.sh"
fi

# Inside the sandbox from here on.
bench_guard
bench_prepare
dir=$BENCH_WORK
cat > "$dir/plain.toml" <<TOML
name = "fwbench"
[networks.fb0]
subnet = "10.200.0.0/20"
members = ["c[1..$N]"]
TOML
cp "$dir/plain.toml" "$dir/fw.toml"
cat >> "$dir/fw.toml" <<TOML

[nodes."c[1..$N]".firewall]
ingress = "deny"
allow = ["icmp", "tcp/80"]
TOML

# Removes the lab and waits until the kernel has destroyed its namespaces.
down() { "$PLUMB" down fwbench >/dev/null; bench_kernel_done; sleep 1; }

plain=() fw=() noop=() rss=()
for ((r = 1; r <= ROUNDS; r++)); do
    bench_run_timed "$dir/out" "$PLUMB" up "$dir/plain.toml"
    plain+=("$BENCH_SECS") rss+=("$BENCH_RSS_KIB")
    down
    bench_run_timed "$dir/out" "$PLUMB" up "$dir/fw.toml"
    fw+=("$BENCH_SECS") rss+=("$BENCH_RSS_KIB")
    bench_run_timed "$dir/out" "$PLUMB" up "$dir/fw.toml"
    noop+=("$BENCH_SECS") rss+=("$BENCH_RSS_KIB")
    # A dry run exits 0 only when nothing is left to do: the no-op up really was one.
    "$PLUMB" up --dry-run "$dir/fw.toml" >"$dir/dry" ||
        bench_die "the firewalled lab is not as its file says after two ups: $(cat "$dir/dry")"
    bench_log "round $r: plain ${plain[-1]} s, firewalled ${fw[-1]} s, again ${noop[-1]} s"
    if ((r == ROUNDS)) && command -v nft >/dev/null; then
        rules=$(ip netns exec c1 nft list table inet plumb-fwbench | grep -c -E '^\s+(ct|iifname|meta|tcp|udp|icmp)' || true)
    fi
    down
done
p=$(bench_median "${plain[@]}")
f=$(bench_median "${fw[@]}")
n=$(bench_median "${noop[@]}")
ratio=$(bench_ratio "$f" "$p")
peak=$(bench_max "${rss[@]}")
printf '\nfirewall-%d: median of %d rounds, %d CPUs, %s\n\n' "$N" "$ROUNDS" "$(nproc)" "$(uname -r)"
printf '| lab | plumb up (s) |\n|---|---|\n'
printf '| %d members, no firewall | %.3f |\n' "$N" "$p"
printf '| %d members, a firewall in each | %.3f |\n' "$N" "$f"
printf '| the same again (no change) | %.3f |\n\n' "$n"
printf 'firewalled / plain: %sx (target <= 1.3); no-op up %.3f s (target < 0.3); peak RSS %s MiB (target < 32)\n' \
    "$ratio" "$n" "$(bench_mib "$peak")"
[ -n "${rules:-}" ] && printf 'rules in each member'"'"'s table: %s\n' "$rules"
ok=1
awk "BEGIN{exit !($ratio <= 1.3)}" || ok=0
awk "BEGIN{exit !($n < 0.3)}" || ok=0
((peak < 32 * 1024)) || ok=0
if ((ok)); then echo PASS; else echo FAIL; exit 1; fi
