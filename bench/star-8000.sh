#!/usr/bin/env bash
# bench/star-8000.sh: how plumb scales past one bridge, and how much of it is the kernel's.
#
# The lab: N namespaces in N/1000 networks of 1000 members (a bridge takes at most 1023 ports),
# network K on bridge brK with 10.100.4(K-1).0/22, members from .2 on, a default route via .1
# (examples/star-8000.toml at N=8000; the same shape is generated for the other sizes).
# Sizes 1000, 4000 and 8000 by default.
#
# Required (Debian packages): iproute2, util-linux (unshare), time (/usr/bin/time), iputils-ping,
# nftables (nft), python3, bash >= 5, mawk or gawk; cargo unless PLUMB is set. A `nofile` hard
# limit of at least N + 256 (`ulimit -Hn`; plumb raises its soft limit to the hard one).
#
# Usage:
#   bench/star-8000.sh
#   SIZES="1000 2000" ROUNDS=1 bench/star-8000.sh      a quick run
#
# Environment:
#   SIZES="1000 4000 8000"  lab sizes, multiples of 1000 (at most 64000).
#   ROUNDS=3        rounds per size; each runs plumb and the kernel-cost probe once, alternating
#                   which goes first. Best and median are reported.
#   KERNEL=1        run the kernel-cost probe (KERNEL=0: plumb only).
#   FLOOR_OPT=PATH  optional: floor-opt, the tuned raw-netlink reference program (not part of
#                   plumb), is also run at size 1000 (it builds one bridge only), as an anchor.
#   PLUMB=PATH      a prebuilt plumb (default: cargo build --release -p plumb-cli).
#   REPORT_ONLY=1   report whether the targets are met but exit 0 anyway.
#   PAUSE=2         seconds of rest after each teardown (after the kernel has finished).
#
# Everything runs inside a fresh user + network + mount namespace with its own /run and /sys
# (bench/lib.sh): nothing on the machine's network is touched.
#
# Measured for each size, in one sandbox:
#   plumb   `up --dry-run` on the empty sandbox (parse, expand, plan); `up` (wall time, peak RSS,
#           CPU time, and a profile per phase from PLUMB_LOG=debug, see below), also until every
#           bridge port forwards (the kernel's linkwatch has caught up: the lab is usable); `up` again (nothing to do:
#           reads every namespace back); `down --dry-run` (reads and plans the teardown); `down`,
#           both until it returns and until the kernel has destroyed the namespaces (the method
#           of bench/lib.sh, validated by bench/kernel-done-check.sh).
#   profile plumb logs the time of every batch of kernel work (`kind`, `steps`, `elapsed`);
#           batches are summed by kind, plus the time from the start of the process to the
#           first batch (start-up, reading the machine, planning), the gaps between batches,
#           and the time from the end of the last batch to the exit.
#   kernel  the same objects built without plumb, phase by phase, each phase one process doing
#           nothing but kernel requests (`ip -batch` for the host side, bench/ns-config.py for
#           the inside of the namespaces, from one process over raw netlink): N namespaces
#           (`netns add`, i.e. unshare + bind mount); the bridges (fixed MAC and MTU, snooping
#           off) and N veth pairs (one queue each, peer born in its namespace, in the lab's
#           link group) plus the tags plumb puts on them (alias, IPv6 address generation off,
#           master); every link up; the addresses, default routes and, with several networks,
#           the nftables table plumb writes (forward drops between the bridges). Teardown as
#           plumb does it: one link-group delete, then `netns del` for each namespace.
#           The kernel column is what the kernel costs for the lab with plumb's own tunings,
#           done in phases in one thread; plumb minus kernel is plumb's own overhead (plus what
#           plumb gains from overlapping work).
#
# Targets: up(8000) / (8 x up(1000)) at most 1.5 (best against best) and plumb's peak RSS at
# 8000 under 64 MiB. Exit status: 0 when met, 1 when not (0 with REPORT_ONLY=1), 2 when the
# benchmark could not run. The targets are evaluated only when SIZES includes 1000 and 8000.
set -euo pipefail

SIZES=${SIZES:-1000 4000 8000}
ROUNDS=${ROUNDS:-3}
KERNEL=${KERNEL:-1}
PAUSE=${PAUSE:-2}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PER=1000
MAX_GROWTH=1.5
MAX_RSS_KIB=$((64 * 1024))
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

if ! bench_inside; then
    for s in $SIZES; do
        if ! [[ "$s" =~ ^[0-9]+$ ]] || ((s < PER || s % PER || s > 64000)); then
            bench_die "SIZES must be multiples of $PER up to 64000, got $s"
        fi
    done
    if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || ((ROUNDS < 1)); then
        bench_die "ROUNDS must be a positive integer, got $ROUNDS"
    fi
    ((BASH_VERSINFO[0] >= 5)) || bench_die "needs bash >= 5 (EPOCHREALTIME)"
    for tool in ip unshare ping awk nft python3; do
        command -v "$tool" >/dev/null || bench_die "missing $tool (apt-get install iproute2 util-linux iputils-ping nftables python3)"
    done
    [[ -x /usr/bin/time ]] || bench_die "missing /usr/bin/time (apt-get install time)"
    read -ra sizes <<<"$SIZES"
    largest=$(bench_max "${sizes[@]}")
    hard=$(ulimit -Hn)
    [[ "$hard" == unlimited ]] || ((hard >= largest + 256)) ||
        bench_die "the nofile hard limit is $hard; N=$largest needs at least $((largest + 256)) (raise it, e.g. in /etc/security/limits.conf, or lower SIZES)"
    if [[ -n "${FLOOR_OPT:-}" ]]; then
        [[ -x "$FLOOR_OPT" && -f "$FLOOR_OPT" ]] || bench_die "FLOOR_OPT=$FLOOR_OPT is not an executable file"
        FLOOR_OPT=$(cd "$(dirname "$FLOOR_OPT")" && pwd)/$(basename "$FLOOR_OPT")
    fi
    bench_plumb "$ROOT"
    export FLOOR_OPT SIZES ROUNDS KERNEL PAUSE REPORT_ONLY
    bench_enter "$HERE/star-8000.sh"
fi

# ---- inside the sandbox from here on -------------------------------------------------------
bench_guard
bench_prepare
WORK=$BENCH_WORK
CPUS=$(nproc)

# Results: V["SIZE:METRIC"] holds one value per round, space-separated.
declare -A V=()
add() { V["$1:$2"]="${V["$1:$2"]:-} $3"; }
# med/best/most SIZE METRIC: median / least / largest over the rounds ("-" if never measured).
# shellcheck disable=SC2086 # the lists are meant to be split
med() { if [[ -n "${V["$1:$2"]:-}" ]]; then bench_median ${V["$1:$2"]}; else echo -; fi; }
# shellcheck disable=SC2086
best() { if [[ -n "${V["$1:$2"]:-}" ]]; then bench_best ${V["$1:$2"]}; else echo -; fi; }
# shellcheck disable=SC2086
most() { if [[ -n "${V["$1:$2"]:-}" ]]; then bench_max ${V["$1:$2"]}; else echo -; fi; }

gateway() { echo "10.100.$((4 * ($1 - 1))).1"; } # of network K

# lab_file SIZE: the topology file (examples/star-8000.toml at 8000, else generated alike).
lab_file() {
    local s=$1 k f
    if [[ "$s" == 8000 && -f "$ROOT/examples/star-8000.toml" ]]; then
        echo "$ROOT/examples/star-8000.toml"
        return
    fi
    f=$WORK/star-$s.toml
    {
        echo "name = \"star$s\""
        for ((k = 1; k <= s / PER; k++)); do
            printf '\n[networks.br%d]\nsubnet = "10.100.%d.0/22"\nmembers = ["c[%d..%d]"]\n' \
                "$k" $((4 * (k - 1))) $(((k - 1) * PER + 1)) $((k * PER))
        done
    } >"$f"
    echo "$f"
}

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

# check_lab WHO SIZE: namespaces, ports on every bridge, two pings.
check_lab() {
    local who=$1 s=$2 nets=$(($2 / PER)) ns k ports
    ns=$(ip netns list | wc -l)
    [[ "$ns" == "$s" ]] || bench_die "$who: $ns namespaces, expected $s"
    for ((k = 1; k <= nets; k++)); do
        ports=$(ip -o link show master "br$k" | wc -l)
        [[ "$ports" == "$PER" ]] || bench_die "$who: $ports ports on br$k, expected $PER"
    done
    ping_from c1 "$(gateway 1)" || bench_die "$who: c1 cannot ping its gateway"
    ping_from "c$s" "$(gateway "$nets")" || bench_die "$who: c$s cannot ping its gateway"
}

check_empty() {
    local who=$1 left
    [[ -z "$(ip netns list)" ]] || bench_die "$who: namespaces left after teardown"
    left=$(ip -o link show | wc -l)
    [[ "$left" == 1 ]] || bench_die "$who: $left interfaces left in the sandbox after teardown (expected only lo)"
}

# profile LOG T0 T1: from plumb's PLUMB_LOG=debug output and the epoch times around the process,
# prints "KIND SECONDS" per batch kind, plus pre (process start to first batch), gaps (between
# batches) and post (last batch to exit), and the inside of the fused build batch: ns_wall (the
# namespace worker's wall time), and the main thread's sched, creates and configure.
profile() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" | awk -v t0="$2" -v t1="$3" '
        function sod(ts,   a, b) {   # "2025-01-01T12:34:56.789012Z" -> seconds of the day
            split(ts, a, "T"); split(a[2], b, ":"); sub(/Z$/, "", b[3])
            return b[1] * 3600 + b[2] * 60 + b[3]
        }
        function dur(v,   p) {     # Rust Duration Debug: 1.2s 3.4ms 5.6µs 7ns
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) / 1e3
            if (v ~ /ns$/) return substr(v, 1, length(v) - 2) / 1e9
            p = index(v, "µ"); if (p) return substr(v, 1, p - 1) / 1e6
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) + 0
            return v + 0
        }
        BEGIN { s0 = t0 - int(t0 / 86400) * 86400; s1 = t1 - int(t1 / 86400) * 86400; if (s1 < s0) s1 += 86400 }
        /build: work done while namespaces were created/ {
            for (i = 2; i <= NF; i++) {
                if ($i ~ /^total=/) { v = $i; sub(/^total=/, "", v); inner["ns_wall"] += dur(v) }
                if ($i ~ /^sched=/) { v = $i; sub(/^sched=/, "", v); inner["sched"] += dur(v) }
                if ($i ~ /^creates=/) { v = $i; sub(/^creates=/, "", v); inner["creates"] += dur(v) }
                if ($i ~ /^configure=/) { v = $i; sub(/^configure=/, "", v); inner["configure"] += dur(v) }
            }
            next
        }
        / batch / {
            ts = sod($1); if (ts < s0 - 43200) ts += 86400
            kind = "?"; d = 0
            for (i = 2; i <= NF; i++) {
                if ($i ~ /^kind=/) { kind = $i; sub(/^kind=/, "", kind); gsub(/"/, "", kind) }
                if ($i ~ /^elapsed=/) { v = $i; sub(/^elapsed=/, "", v); d = dur(v) }
            }
            if (n++ == 0) first = ts - d; else gaps += ts - d - last
            last = ts; sum[kind] += d
        }
        END {
            if (!n) exit 1
            printf "pre %.6f\ngaps %.6f\npost %.6f\n", first - s0, gaps, s1 - last
            for (k in sum) printf "%s %.6f\n", k, sum[k]
            for (k in inner) printf "%s %.6f\n", k, inner[k]
        }'
}

# Batch kinds (build is the fused one: namespaces, bridges, veth pairs, settings, addresses,
# routes) and, inside the build batch, the namespace worker's wall time and the main thread's
# scheduling, link creation and configuration, which overlap the worker.
KINDS=(build firewall ns_wall sched creates configure)

plumb_round() {
    local s=$1 file=$2 lab=star$1 k v line
    BENCH_ALLOW_RC=1 bench_run_timed "$WORK/out" "$PLUMB" up --dry-run "$file"
    add "$s" p_dry_up "$BENCH_SECS"
    PLUMB_LOG=debug bench_run_timed "$WORK/up.log" "$PLUMB" up "$file"
    add "$s" p_up "$BENCH_SECS"
    add "$s" p_rss "$BENCH_RSS_KIB"
    add "$s" p_user "$BENCH_USER"
    add "$s" p_sys "$BENCH_SYS"
    profile "$WORK/up.log" "$BENCH_T0" "$BENCH_T1" >"$WORK/profile" || bench_die "no batch timings in plumb's PLUMB_LOG=debug output"
    for k in pre gaps post "${KINDS[@]}"; do
        v=0
        while read -r line; do [[ "${line%% *}" != "$k" ]] || v=${line#* }; done <"$WORK/profile"
        add "$s" "p_$k" "$v"
    done
    while read -r line; do
        k=${line%% *}
        [[ " pre gaps post ${KINDS[*]} " == *" $k "* ]] || bench_log "  (plumb batch kind $k is not in the report: ${line#* } s)"
    done <"$WORK/profile"
    bench_wait_ports_forwarding
    add "$s" p_ready "$(bench_elapsed "$BENCH_T0" "$BENCH_READY_AT")"
    check_lab plumb "$s"
    bench_run_timed "$WORK/out" "$PLUMB" up "$file"
    add "$s" p_noop "$BENCH_SECS"
    add "$s" p_noop_user "$BENCH_USER"
    add "$s" p_rss "$BENCH_RSS_KIB"
    BENCH_ALLOW_RC=1 bench_run_timed "$WORK/out" "$PLUMB" down --dry-run "$lab"
    add "$s" p_dry_down "$BENCH_SECS"
    bench_run_timed "$WORK/out" "$PLUMB" down "$lab"
    add "$s" p_ret "$BENCH_SECS"
    add "$s" p_down_user "$BENCH_USER"
    add "$s" p_rss "$BENCH_RSS_KIB"
    bench_kernel_done
    add "$s" p_fin "$(bench_elapsed "$BENCH_T0" "$BENCH_DONE_AT")"
    check_empty plumb
    bench_log "  plumb:  up $(last "$s" p_up) s (ports forwarding $(last "$s" p_ready) s; RSS $(bench_mib "$BENCH_RSS_KIB") MiB at down), down $(last "$s" p_ret) s, kernel done $(last "$s" p_fin) s"
    sleep "$PAUSE"
}
last() { local a; read -ra a <<<"${V["$1:$2"]}"; echo "${a[-1]}"; }

# timed_batch FILE: runs ip -batch FILE; prints the seconds it took.
timed_batch() {
    local t0=$EPOCHREALTIME
    ip -batch "$1" >/dev/null || bench_die "kernel probe: ip -batch $1 failed"
    bench_elapsed "$t0" "$EPOCHREALTIME"
}
# py PHASE SIZE: bench/ns-config.py; prints the seconds its loop took.
py() { python3 "$HERE/ns-config.py" "$1" "$2" "$PER" || bench_die "kernel probe: ns-config.py $1 failed"; }
sum() { awk 'BEGIN { s = 0; for (i = 1; i < ARGC; i++) s += ARGV[i]; printf "%.3f", s }' "$@"; }

kernel_round() {
    local s=$1 nets=$(($1 / PER)) i k t0 a b c
    local ns=$WORK/k-ns links=$WORK/k-links up=$WORK/k-up addr=$WORK/k-addr del=$WORK/k-del fw=$WORK/k-nft
    for ((i = 1; i <= s; i++)); do echo "netns add c$i"; done >"$ns"
    for ((k = 1; k <= nets; k++)); do
        printf 'link add br%d group 77 address 02:00:00:00:00:%02x mtu 1500 type bridge stp_state 0 mcast_snooping 0\n' "$k" "$k"
        echo "link set br$k alias plumb:kprobe addrgenmode none"
        for ((i = (k - 1) * PER + 1; i <= k * PER; i++)); do
            echo "link add vh$i group 77 numtxqueues 1 numrxqueues 1 type veth peer name eth0 numtxqueues 1 numrxqueues 1 netns c$i"
            echo "link set vh$i master br$k alias plumb:kprobe addrgenmode none"
        done
    done >"$links"
    {
        for ((k = 1; k <= nets; k++)); do echo "link set br$k up"; done
        for ((i = 1; i <= s; i++)); do echo "link set vh$i up"; done
    } >"$up"
    for ((k = 1; k <= nets; k++)); do echo "address add $(gateway "$k")/22 dev br$k"; done >"$addr"
    {
        echo "table inet kprobe {"
        printf '  set bridges { type ifname; elements = { %s } }\n' "$(for ((k = 1; k <= nets; k++)); do printf '"br%d", ' "$k"; done | sed 's/, $//')"
        echo "  chain forward { type filter hook forward priority 0; policy accept;"
        for ((k = 1; k <= nets; k++)); do echo "    iifname \"br$k\" oifname != \"br$k\" oifname @bridges drop"; done
        echo "  }"
        echo "}"
    } >"$fw"
    for ((i = 1; i <= s; i++)); do echo "netns del c$i"; done >"$del"

    a=$(timed_batch "$ns")
    add "$s" k_ns "$a"
    a=$(timed_batch "$links")
    b=$(py tag "$s")
    add "$s" k_links "$(sum "$a" "$b")"
    a=$(timed_batch "$up")
    b=$(py up "$s")
    add "$s" k_up "$(sum "$a" "$b")"
    a=$(timed_batch "$addr")
    b=$(py addr "$s")
    c=0
    if ((nets > 1)); then
        t0=$EPOCHREALTIME
        nft -f "$fw" || bench_die "kernel probe: nft failed"
        c=$(bench_elapsed "$t0" "$EPOCHREALTIME")
    fi
    add "$s" k_addr "$(sum "$a" "$b" "$c")"
    add "$s" k_total "$(sum "$(last "$s" k_ns)" "$(last "$s" k_links)" "$(last "$s" k_up)" "$(last "$s" k_addr)")"
    local k1=$EPOCHREALTIME
    bench_wait_ports_forwarding
    # the phases' sum plus the wait after the last one (process start-ups between phases left out)
    add "$s" k_ready "$(sum "$(last "$s" k_total)" "$(bench_elapsed "$k1" "$BENCH_READY_AT")")"
    check_lab kernel-probe "$s"

    t0=$EPOCHREALTIME
    ip link del group 77 || bench_die "kernel probe: group delete failed"
    ip -batch "$del" >/dev/null || bench_die "kernel probe: netns del failed"
    ((nets == 1)) || nft delete table inet kprobe
    add "$s" k_ret "$(bench_elapsed "$t0" "$EPOCHREALTIME")"
    bench_kernel_done
    add "$s" k_fin "$(bench_elapsed "$t0" "$BENCH_DONE_AT")"
    check_empty kernel-probe
    bench_log "  kernel: up $(last "$s" k_total) s (ports forwarding $(last "$s" k_ready) s; netns $(last "$s" k_ns), links $(last "$s" k_links), up $(last "$s" k_up), addr+route $(last "$s" k_addr)), down $(last "$s" k_ret) s, kernel done $(last "$s" k_fin) s"
    sleep "$PAUSE"
}

floor_round() {
    bench_run_timed "$WORK/out" "$FLOOR_OPT" up "$PER"
    add "$PER" f_up "$BENCH_SECS"
    bench_run_timed "$WORK/out" "$FLOOR_OPT" down "$PER"
    add "$PER" f_ret "$BENCH_SECS"
    bench_kernel_done
    add "$PER" f_fin "$(bench_elapsed "$BENCH_T0" "$BENCH_DONE_AT")"
    check_empty floor-opt
    bench_log "  floor-opt: up $(last "$PER" f_up) s, down $(last "$PER" f_ret) s, kernel done $(last "$PER" f_fin) s"
    sleep "$PAUSE"
}

bench_log "sizes $SIZES, $ROUNDS rounds, $CPUS CPUs, kernel $(uname -r), nofile $(ulimit -Sn)/$(ulimit -Hn), plumb $PLUMB"
DONE_MS=$(bench_kernel_done_cost_ms 3)
for s in $SIZES; do
    file=$(lab_file "$s")
    bench_log "N=$s ($((s / PER)) networks), file $file"
    for ((r = 1; r <= ROUNDS; r++)); do
        bench_log " round $r/$ROUNDS"
        if [[ "$KERNEL" != 1 ]]; then
            plumb_round "$s" "$file"
        elif ((r % 2)); then
            plumb_round "$s" "$file"
            kernel_round "$s"
        else
            kernel_round "$s"
            plumb_round "$s" "$file"
        fi
        if [[ "$s" == "$PER" && -n "${FLOOR_OPT:-}" ]]; then floor_round; fi
    done
done

# ---- report ----
read -ra SZ <<<"$SIZES"
f3() { if [[ "$1" == - ]]; then echo -; else awk -v v="$1" 'BEGIN { printf "%.3f", v }'; fi; }
sub3() { if [[ "$1" == - || "$2" == - ]]; then echo -; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; fi; }
# growth V(large) V(small) FACTOR: V(large) / (FACTOR x V(small))
# ("-" when either is missing or the small one is under 5 ms: no meaningful ratio).
growth() { if [[ "$1" == - || "$2" == - ]]; then echo -; else awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { if (b < 0.005 || a < 0) print "-"; else printf "%.2f", a / (f * b) }'; fi; }
# m2 SIZE METRIC...: the sum of the medians of several metrics
m2() {
    local s=$1 m vals=()
    shift
    for m in "$@"; do vals+=("$(med "$s" "$m")"); done
    [[ " ${vals[*]} " != *" - "* ]] || { echo -; return; }
    sum "${vals[@]}"
}

echo
echo "star-N past one bridge: N namespaces in N/$PER networks of $PER; $CPUS CPUs, Linux $(uname -r); $ROUNDS rounds; seconds"
echo
hdr="| N | networks | plumb up best | plumb up median | plumb up, ports forwarding | up again | up --dry-run | down --dry-run | down (returns) | down (kernel done) | plumb peak RSS | kernel up | kernel up, ports forwarding | kernel down (returns) | kernel down (kernel done) | plumb up / kernel up |"
echo "$hdr"
echo "${hdr//[^|]/-}"
for s in "${SZ[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s MiB | %s | %s | %s | %s | %s |\n' "$s" $((s / PER)) \
        "$(best "$s" p_up)" "$(med "$s" p_up)" "$(med "$s" p_ready)" "$(med "$s" p_noop)" "$(med "$s" p_dry_up)" "$(med "$s" p_dry_down)" \
        "$(med "$s" p_ret)" "$(med "$s" p_fin)" "$(bench_mib "$(most "$s" p_rss)")" \
        "$(f3 "$(med "$s" k_total)")" "$(med "$s" k_ready)" "$(med "$s" k_ret)" "$(med "$s" k_fin)" "$(bench_ratio "$(med "$s" p_up)" "$(med "$s" k_total)")"
done
echo
echo "worst round, plumb up until every bridge port forwards: $(for s in "${SZ[@]}"; do printf '%s at %s; ' "$(most "$s" p_ready)" "$s"; done)"
if [[ "$(med "$PER" f_up)" != - ]]; then
    echo
    echo "floor-opt at $PER (one bridge; medians): up $(med "$PER" f_up) s, down $(med "$PER" f_ret) s, kernel done $(med "$PER" f_fin) s"
fi
echo
echo "'kernel done': until the kernel has destroyed every namespace the teardown released (the check alone costs $DONE_MS ms)."
echo

# Phase table: plumb's batches by kind against the kernel probe's phases (medians).
echo "plumb up, phase by phase (medians; kernel = the same objects built phase by phase without plumb):"
echo
phase_rows=(
    "start-up, reading the machine, planning|p_pre|"
    "build batch, wall (namespaces, bridges, veths, settings, addresses, routes, overlapped)|p_build|k_ns k_links k_up k_addr"
    "  of which namespaces (worker thread, wall)|p_ns_wall|k_ns"
    "  of which bridges + veth pairs + tags (main thread)|p_creates|k_links"
    "  of which settings, ups, addresses, routes (main thread)|p_configure|k_up k_addr"
    "  of which scheduling (main thread, plumb's own)|p_sched|"
    "nftables (firewall)|p_firewall|"
    "between batches|p_gaps|"
    "after the last batch (exit)|p_post|"
    "total|p_up|k_total"
)
hdr="| phase |"
for s in "${SZ[@]}"; do hdr+=" plumb $s | kernel $s | plumb - kernel $s |"; done
first=${SZ[0]} lastsz=${SZ[-1]}
factor=$((lastsz / first))
if ((${#SZ[@]} > 1)); then hdr+=" growth plumb $lastsz/($factor x $first) | growth kernel | growth plumb - kernel |"; fi
echo "$hdr"
echo "${hdr//[^|]/-}"
for row in "${phase_rows[@]}"; do
    IFS='|' read -r label pm km <<<"$row"
    line="| $label |"
    declare -A P=() K=() D=()
    for s in "${SZ[@]}"; do
        # shellcheck disable=SC2086 # word splitting of the metric lists is wanted
        P[$s]=$(m2 "$s" $pm)
        # shellcheck disable=SC2086 # word splitting of the metric lists is wanted
        if [[ -n "$km" ]]; then K[$s]=$(m2 "$s" $km); else K[$s]=-; fi
        if [[ "${K[$s]}" == - ]]; then D[$s]=${P[$s]}; else D[$s]=$(sub3 "${P[$s]}" "${K[$s]}"); fi
        line+=" ${P[$s]} | ${K[$s]} | ${D[$s]} |"
    done
    if ((${#SZ[@]} > 1)); then
        line+=" $(growth "${P[$lastsz]}" "${P[$first]}" "$factor") | $(growth "${K[$lastsz]}" "${K[$first]}" "$factor") | $(growth "${D[$lastsz]}" "${D[$first]}" "$factor") |"
    fi
    echo "$line"
    unset P K D
done
echo
echo "(rows without a kernel figure are plumb's own time. The kernel probe pays ip's own per-command work"
echo " and one round trip per request, which plumb avoids by pipelining, so at small N plumb can be below it.)"
echo

# CPU time plumb's process used: user space is all plumb's own work; system time is kernel work
# done on plumb's threads (not what kernel workers do afterwards).
echo "plumb's CPU time (medians, seconds; user = plumb's own code, system = kernel work on plumb's threads):"
echo
hdr="| command |"
for s in "${SZ[@]}"; do hdr+=" $s |"; done
((${#SZ[@]} == 1)) || hdr+=" growth $lastsz/($factor x $first) |"
echo "$hdr"
echo "${hdr//[^|]/-}"
for row in "up: user|p_user" "up: system|p_sys" "up again (no change): user|p_noop_user" "down: user|p_down_user"; do
    IFS='|' read -r label m <<<"$row"
    line="| $label |"
    for s in "${SZ[@]}"; do line+=" $(med "$s" "$m") |"; done
    ((${#SZ[@]} == 1)) || line+=" $(growth "$(med "$lastsz" "$m")" "$(med "$first" "$m")" "$factor") |"
    echo "$line"
done
echo

# ---- targets ----
VERDICT=PASS
if [[ " $SIZES " == *" 1000 "* && " $SIZES " == *" 8000 "* ]]; then
    g_best=$(growth "$(best 8000 p_up)" "$(best 1000 p_up)" 8)
    g_med=$(growth "$(med 8000 p_up)" "$(med 1000 p_up)" 8)
    rss=$(bench_mib "$(most 8000 p_rss)")
    echo "targets:"
    ok=$(awk -v v="$g_best" -v l="$MAX_GROWTH" 'BEGIN { print (v <= l) ? "met" : "NOT MET" }')
    [[ "$ok" == met ]] || VERDICT=FAIL
    printf '  up(8000) / (8 x up(1000)) <= %s:  %s best against best (%s median)  %s\n' "$MAX_GROWTH" "$g_best" "$g_med" "$ok"
    ok=$(awk -v v="$(most 8000 p_rss)" -v l="$MAX_RSS_KIB" 'BEGIN { print (v < l) ? "met" : "NOT MET" }')
    [[ "$ok" == met ]] || VERDICT=FAIL
    printf '  plumb peak RSS at 8000 < %d MiB:   %s MiB  %s\n' $((MAX_RSS_KIB / 1024)) "$rss" "$ok"
    printf '  (not a target) the same ratio until every bridge port forwards: %s best against best, %s median\n' \
        "$(growth "$(best 8000 p_ready)" "$(best 1000 p_ready)" 8)" "$(growth "$(med 8000 p_ready)" "$(med 1000 p_ready)" 8)"
    printf '  (not a target) the same ratio for the kernel probe: %s best against best, %s median\n' \
        "$(growth "$(best 8000 k_total)" "$(best 1000 k_total)" 8)" "$(growth "$(med 8000 k_total)" "$(med 1000 k_total)" 8)"
    echo
    echo "$VERDICT"
else
    echo "(targets need SIZES with 1000 and 8000; not evaluated)"
fi
if [[ "$VERDICT" != PASS ]]; then
    [[ "${REPORT_ONLY:-}" == 1 ]] && { echo "(REPORT_ONLY=1: exit status 0)"; exit 0; }
    exit 1
fi
