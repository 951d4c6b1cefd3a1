# bench/lib.sh: shared by the benchmark scripts (sourced, not run).
#
# The sandbox: every benchmark re-executes itself inside a fresh user + network + mount
# namespace (`unshare --user --map-root-user --net --mount --propagation private`), as root of
# that user namespace, with its own tmpfs on /run (so /run/netns and /run/plumb are private) and
# its own sysfs on /sys (so /sys/class/net shows the sandbox's interfaces, not the machine's).
# Nothing on the machine's network is touched; whatever a run leaves behind dies with it.
#
# The guard (bench_guard) refuses to run unless the current network namespace differs from the
# one of the process that started the script (its inode is recorded before the re-execution),
# the user namespace differs too, and the network namespace is fresh (only `lo`).
#
# "Kernel finished destroying" (bench_kernel_done): deleting a network namespace only releases
# it; the kernel destroys it later, on its `netns` workqueue (cleanup_net), and on Linux 6.18 even
# the release itself can come late (after `ip netns del` or a detached /run/netns has returned,
# the namespace may be handed to cleanup_net only later). The kernel charges every network
# namespace to the user namespace that created it and uncharges it at the very end of cleanup_net;
# creating one fails with ENOSPC, before anything is created, while the charge is at the user
# namespace's /proc/sys/user/max_net_namespaces. bench_kernel_done sets that limit (of the
# sandbox's own user namespace) to 2 and has bench/netns-gone.py attempt unshare(CLONE_NEWNET)
# every millisecond: the first attempt that succeeds proves that only the sandbox's own namespace
# was left, i.e. the kernel had finished destroying every other one. With nothing pending it
# costs well under a millisecond. bench/kernel-done-check.sh validates it against an independent
# observer and floor-opt's FLOOR_WAIT=1, and shows why the simpler "veth sentinel" (queue one more
# namespace and wait for it) finishes too early on this kernel. The workqueue is machine-wide:
# namespaces other users of the machine release at the same time are destroyed in the same queue
# and can delay the figure.
#
# shellcheck shell=bash disable=SC2034 # BENCH_* variables are read by the scripts sourcing this

BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

bench_die() {
    echo "bench: $*" >&2
    exit 2
}
bench_log() { echo "bench: $*" >&2; }

bench_inside() { [[ "${PLUMB_BENCH_INSIDE:-}" == 1 ]]; }

# bench_plumb ROOT: sets and exports PLUMB, the absolute path of the plumb binary to measure:
# $PLUMB if set, else the release build of the checkout at ROOT (built here, outside the sandbox).
bench_plumb() {
    local root=$1
    if [[ -z "${PLUMB:-}" ]]; then
        (cd "$root" && cargo build --release --quiet -p plumb-cli) || bench_die "cargo build failed"
        PLUMB=$root/target/release/plumb
    fi
    [[ -x "$PLUMB" ]] || bench_die "no plumb binary at $PLUMB"
    PLUMB=$(cd "$(dirname "$PLUMB")" && pwd)/$(basename "$PLUMB")
    export PLUMB
}

# bench_enter SCRIPT: re-executes SCRIPT in a fresh sandbox; never returns.
bench_enter() {
    local script=$1
    command -v unshare >/dev/null || bench_die "missing unshare (apt-get install util-linux)"
    PLUMB_BENCH_OUTER_NET=$(readlink /proc/self/ns/net) || bench_die "cannot read /proc/self/ns/net"
    PLUMB_BENCH_OUTER_USER=$(readlink /proc/self/ns/user) || bench_die "cannot read /proc/self/ns/user"
    export PLUMB_BENCH_INSIDE=1 PLUMB_BENCH_OUTER_NET PLUMB_BENCH_OUTER_USER
    exec unshare --user --map-root-user --net --mount --propagation private -- bash "$script"
}

# Refuses to run anywhere but in a sandbox bench_enter made.
bench_guard() {
    local net user links
    net=$(readlink /proc/self/ns/net)
    user=$(readlink /proc/self/ns/user)
    [[ -n "${PLUMB_BENCH_OUTER_NET:-}" && -n "${PLUMB_BENCH_OUTER_USER:-}" ]] ||
        bench_die "not started through the script's sandbox (PLUMB_BENCH_OUTER_NET unset); refusing to run"
    [[ "$net" != "$PLUMB_BENCH_OUTER_NET" ]] ||
        bench_die "still in the network namespace of the process that started the script ($net); refusing to run"
    [[ "$user" != "$PLUMB_BENCH_OUTER_USER" ]] ||
        bench_die "not in a new user namespace ($user); refusing to run"
    links=$(ip -o link show | wc -l)
    [[ "$links" == 1 ]] ||
        bench_die "this network namespace has $links interfaces, a fresh one has only lo; refusing to run"
}

# Private /run (with /run/netns), own sysfs, a scratch directory ($BENCH_WORK, removed on exit)
# and a file descriptor to sleep on without forking.
bench_prepare() {
    mount -t tmpfs -o mode=0755 tmpfs /run || bench_die "cannot mount a private /run"
    mkdir -p /run/netns
    mount -t sysfs sysfs /sys || bench_die "cannot mount the sandbox's own sysfs on /sys"
    local seen
    seen=$(ls /sys/class/net)
    [[ "$seen" == lo ]] || bench_die "/sys/class/net shows '$seen', not the sandbox's namespace"
    BENCH_WORK=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: the path is fixed
    trap "rm -rf '$BENCH_WORK'" EXIT
    mkfifo "$BENCH_WORK/sleep"
    exec {BENCH_SLEEP_FD}<>"$BENCH_WORK/sleep"
    bench_start_gone
}

# Sleeps about 1 ms without starting a process (read on a FIFO nobody writes to).
bench_sleep_1ms() { read -r -t 0.001 -u "$BENCH_SLEEP_FD" _ || true; }

# Seconds since the epoch, microsecond resolution, without a fork.
bench_now() { echo "$EPOCHREALTIME"; }

# bench_elapsed T0 T1: T1 - T0 in seconds, 3 decimals.
bench_elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

BENCH_NS_MAX=/proc/sys/user/max_net_namespaces

# bench_gone_ask CMD: one request to the netns-gone coprocess; the answer in BENCH_GONE_ANSWER.
bench_gone_ask() {
    echo "$1" >&"${BENCH_GONE[1]}"
    read -r BENCH_GONE_ANSWER <&"${BENCH_GONE[0]}" || bench_die "bench/netns-gone.py stopped"
    [[ "$BENCH_GONE_ANSWER" != error* ]] || bench_die "bench/netns-gone.py: $BENCH_GONE_ANSWER"
}

# Starts bench/netns-gone.py and checks that the namespace limit behaves as the method needs:
# with only the sandbox's own namespace alive, creating one is refused at limit 1, allowed at 2.
bench_start_gone() {
    command -v python3 >/dev/null || bench_die "missing python3 (apt-get install python3)"
    coproc BENCH_GONE { exec python3 -u "$BENCH_LIB_DIR/netns-gone.py"; }
    BENCH_NS_UNLIMITED=$(cat "$BENCH_NS_MAX") || bench_die "cannot read $BENCH_NS_MAX"
    echo 1 >"$BENCH_NS_MAX" || bench_die "cannot write $BENCH_NS_MAX in the sandbox's user namespace"
    bench_gone_ask try
    [[ "$BENCH_GONE_ANSWER" == busy ]] || bench_die "a namespace could be created beyond user.max_net_namespaces=1 ($BENCH_GONE_ANSWER)"
    echo 2 >"$BENCH_NS_MAX"
    bench_gone_ask try
    [[ "$BENCH_GONE_ANSWER" == ok* ]] || bench_die "no namespace could be created at user.max_net_namespaces=2 ($BENCH_GONE_ANSWER)"
    echo "$BENCH_NS_UNLIMITED" >"$BENCH_NS_MAX"
}

# Returns once the kernel has destroyed every network namespace of the sandbox but its own (see
# the header); BENCH_DONE_AT is the wall clock (as EPOCHREALTIME) at which that was seen.
bench_kernel_done() {
    echo 2 >"$BENCH_NS_MAX"
    bench_gone_ask go
    echo "$BENCH_NS_UNLIMITED" >"$BENCH_NS_MAX"
    [[ "$BENCH_GONE_ANSWER" == ok* ]] || bench_die "the kernel did not finish destroying the namespaces within 10 minutes"
    BENCH_DONE_AT=${BENCH_GONE_ANSWER#ok }
}

# The cost of bench_kernel_done itself with nothing pending: median of $1 runs, in ms.
bench_kernel_done_cost_ms() {
    local i t0 all=()
    for ((i = 0; i < $1; i++)); do
        sleep 0.2
        t0=$EPOCHREALTIME
        bench_kernel_done
        all+=("$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", (b - a) * 1000 }')")
    done
    bench_median "${all[@]}"
}

# The "veth sentinel" (NOT what the benchmarks use; kept for bench/kernel-done-check.sh, which
# shows it finishing too early): queue one more namespace holding one end of a veth pair whose
# other end is in the sandbox, and wait until the sandbox's end is gone.
bench_veth_sentinel() {
    ip -batch - <<EOF >/dev/null || bench_die "cannot set up the sentinel namespace"
netns add bench-sentinel
link add bsentinel0 type veth peer name bsentinel0 netns bench-sentinel
netns del bench-sentinel
EOF
    local start=${EPOCHREALTIME%.*}
    while [[ -e /sys/class/net/bsentinel0 ]]; do
        bench_sleep_1ms
        ((${EPOCHREALTIME%.*} - start < 600)) || bench_die "the sentinel namespace was not destroyed within 10 minutes"
    done
}

# Returns once every bridge port in the sandbox is forwarding; BENCH_READY_AT is the wall clock
# of the first poll that saw it. After a tool has set the links up, the kernel still has to
# process each device's carrier change (linkwatch, at most 100 devices per run, runs paced up to
# a second apart while other events are pending); until then a bridge port stays disabled and
# its member unreachable. Polls `bridge link show` every ~20 ms; dies after 10 minutes.
bench_wait_ports_forwarding() {
    local start=${EPOCHREALTIME%.*} ports
    while :; do
        ports=$(bridge link show)
        if [[ -n "$ports" && "$ports" != *"state disabled"* && "$ports" != *"state listening"* &&
            "$ports" != *"state learning"* && "$ports" != *"state blocking"* ]]; then
            break
        fi
        read -r -t 0.02 -u "$BENCH_SLEEP_FD" _ || true
        ((${EPOCHREALTIME%.*} - start < 600)) || bench_die "bridge ports still not forwarding after 10 minutes"
    done
    BENCH_READY_AT=$EPOCHREALTIME
}

# bench_median V...: the median (the lower middle for an even count); bench_best V...: the least.
bench_median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
bench_best() { printf '%s\n' "$@" | sort -g | head -n 1; }
bench_max() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# bench_ratio A B: A / B with 2 decimals ("-" if either is missing or B is 0).
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

bench_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# bench_run_timed OUT CMD...: runs CMD under /usr/bin/time with stdout+stderr in OUT; sets
# BENCH_SECS (wall time), BENCH_T0/BENCH_T1 (epoch seconds around it), BENCH_RSS_KIB (peak
# RSS) and BENCH_USER/BENCH_SYS (CPU seconds in user space / in the kernel, all threads).
# CMD must exit 0, or with one of the statuses listed in BENCH_ALLOW_RC (e.g. "1").
bench_run_timed() {
    local out=$1 rc=0
    shift
    BENCH_T0=$EPOCHREALTIME
    /usr/bin/time -f '%M %U %S' -o "$BENCH_WORK/rss" "$@" >"$out" 2>&1 || rc=$?
    BENCH_T1=$EPOCHREALTIME
    if ((rc)) && [[ " ${BENCH_ALLOW_RC:-} " != *" $rc "* ]]; then
        tail -n 20 "$out" >&2
        bench_die "failed (exit status $rc): $*"
    fi
    BENCH_SECS=$(bench_elapsed "$BENCH_T0" "$BENCH_T1")
    read -r BENCH_RSS_KIB BENCH_USER BENCH_SYS < <(tail -n 1 "$BENCH_WORK/rss")
}
