#!/usr/bin/env bash
# bench/capture-flood.sh: plumb capture against tcpdump -w under a bounded UDP flood.
#
# Two namespaces a and b joined by a veth (a plumb lab), a sender in a that sends COUNT small
# UDP datagrams (18-byte payload, 60-byte frames) to b as fast as python can, and one capture
# on b:eth0 with the filter `udp`, written to a file: `plumb capture b:eth0 -w` or
# `ip netns exec b tcpdump -i eth0 -w`, alternating, ROUNDS times each, with the same ring
# size (BUFFER, 4 MiB by default: plumb's default; tcpdump's own default is 2 MiB). For each run:
# datagrams sent, packets captured (the file's count, by tcpdump -r), drops as the tool reports
# them, and the capture process's CPU time (user + system, from getrusage of its wrapper) per
# captured packet. Targets: plumb captures at least as many packets as tcpdump, with no more
# CPU time per packet.
#
# Why root: tcpdump insists on dropping privileges (setgroups), which a user namespace refuses;
# so this benchmark runs as root in a fresh network + mount namespace (unshare --net --mount,
# private mounts, its own tmpfs /run and sysfs), not in bench/lib.sh's user-namespace sandbox.
# It refuses to run in the network namespace it was started from, or in one that is not fresh.
#
# Required (Debian packages): tcpdump, python3, iproute2, util-linux (unshare); cargo unless
# PLUMB is set.
# Usage: sudo bench/capture-flood.sh            COUNT=1000000 ROUNDS=3 BUFFER=4M
#        COUNT=200000 PLUMB=target/release/plumb bench/capture-flood.sh
set -euo pipefail
COUNT=${COUNT:-1000000}
ROUNDS=${ROUNDS:-3}
BUFFER=${BUFFER:-4M}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

die() {
    echo "bench: $*" >&2
    exit 2
}

if [[ "${PLUMB_FLOOD_INSIDE:-}" != 1 ]]; then
    [[ $(id -u) == 0 ]] || die "run as root (tcpdump cannot drop privileges inside a user namespace)"
    for t in tcpdump python3 unshare ip; do
        command -v "$t" >/dev/null || die "missing $t"
    done
    if [ -z "${PLUMB:-}" ]; then
        (cd "$ROOT" && cargo build --release -q -p plumb-cli) || die "cargo build failed"
        PLUMB="$ROOT/target/release/plumb"
    fi
    PLUMB=$(cd "$(dirname "$PLUMB")" && pwd)/$(basename "$PLUMB")
    PLUMB_FLOOD_OUTER_NET=$(readlink /proc/self/ns/net)
    export PLUMB COUNT ROUNDS BUFFER PLUMB_FLOOD_OUTER_NET PLUMB_FLOOD_INSIDE=1
    exec unshare --net --mount --propagation private -- bash "$HERE/capture-flood.sh"
fi

# Inside the sandbox from here on.
[[ $(readlink /proc/self/ns/net) != "$PLUMB_FLOOD_OUTER_NET" ]] ||
    die "still in the network namespace the script was started from; refusing to run"
[[ $(ip -o link show | wc -l) == 1 ]] || die "this network namespace is not fresh; refusing to run"
mount -t tmpfs -o mode=0755 tmpfs /run || die "cannot mount a private /run"
mkdir -p /run/netns
mount -t sysfs sysfs /sys || die "cannot mount the sandbox's own sysfs"
ip link set lo up
WORK=$(mktemp -d -p /run)
chmod 0777 "$WORK" # tcpdump writes as its own user
cat >"$WORK/flood.toml" <<'TOML'
name = "flood"
[nodes.a.interfaces.eth0]
addresses = ["10.77.0.1/24"]
[nodes.b.interfaces.eth0]
addresses = ["10.77.0.2/24"]
[[links]]
endpoints = ["a:eth0", "b:eth0"]
TOML
"$PLUMB" up "$WORK/flood.toml" >/dev/null
ip netns exec a ping -c 1 -W 5 10.77.0.2 >/dev/null || die "a cannot reach b"

# Runs a command, forwards SIGINT to it, and prints its CPU time (user + system, s) on fd 3.
cat >"$WORK/cpu.py" <<'PY'
import os, resource, signal, subprocess, sys
p = subprocess.Popen(sys.argv[1:])
signal.signal(signal.SIGINT, lambda *_: p.send_signal(signal.SIGINT))
p.wait()
r = resource.getrusage(resource.RUSAGE_CHILDREN)
os.write(3, b"%.6f\n" % (r.ru_utime + r.ru_stime))
PY
cat >"$WORK/send.py" <<'PY'
import socket, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.77.0.2", 9999))
payload = b"x" * 18
sent = 0
for _ in range(n):
    try:
        s.send(payload)
        sent += 1
    except OSError:
        pass
print(sent)
PY

bytes=$(python3 -c "
s='$BUFFER'; m={'K':1<<10,'M':1<<20,'G':1<<30}
print(int(s[:-1])*m[s[-1].upper()] if s[-1].upper() in m else int(s))")

# run TOOL ROUND: one capture under one flood; prints "sent captured dropped cpu_s".
run() {
    local tool=$1 file="$WORK/$1.pcap" err="$WORK/$1.err" cpu="$WORK/$1.cpu" ready
    rm -f "$file" "$err" "$cpu"
    if [[ $tool == plumb ]]; then
        python3 "$WORK/cpu.py" "$PLUMB" capture b:eth0 --buffer "$BUFFER" -w "$file" udp \
            2>"$err" 3>"$cpu" &
        ready="capturing on"
    else
        python3 "$WORK/cpu.py" ip netns exec b tcpdump -i eth0 -n -B $((bytes / 1024)) \
            -w "$file" udp 2>"$err" 3>"$cpu" &
        ready="listening on"
    fi
    local pid=$!
    for _ in $(seq 200); do
        grep -q "$ready" "$err" 2>/dev/null && break
        sleep 0.05
    done
    grep -q "$ready" "$err" || die "$tool did not start: $(cat "$err")"
    local sent
    sent=$(ip netns exec a python3 "$WORK/send.py" "$COUNT")
    sleep 1
    kill -INT "$pid"
    wait "$pid" || true
    local captured dropped
    captured=$(tcpdump -r "$file" -n 2>/dev/null | wc -l)
    if [[ $tool == plumb ]]; then
        dropped=$(sed -n 's/^b\/eth0: .* captured, \([0-9]*\) dropped.*/\1/p' "$err")
    else
        dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel$/\1/p' "$err")
    fi
    echo "$sent $captured ${dropped:-?} $(cat "$cpu")"
}

printf '%-8s %5s %9s %9s %9s %8s %12s\n' tool round sent captured dropped cpu_s us/packet
for r in $(seq "$ROUNDS"); do
    for tool in tcpdump plumb; do
        read -r sent captured dropped cpu < <(run "$tool")
        per=$(awk -v c="$cpu" -v n="$captured" 'BEGIN { printf "%.3f", n ? c * 1e6 / n : 0 }')
        printf '%-8s %5s %9s %9s %9s %8s %12s\n' "$tool" "$r" "$sent" "$captured" "$dropped" "$cpu" "$per"
        echo "$tool $sent $captured $dropped $cpu $per" >>"$WORK/results"
    done
done
echo
echo "medians over $ROUNDS rounds (COUNT=$COUNT, ring $BUFFER per tool):"
for tool in tcpdump plumb; do
    awk -v t="$tool" '$1 == t' "$WORK/results" | sort -k3 -n | awk -v t="$tool" '
        { c[NR] = $3; d[NR] = $4 }
        END { m = int((NR + 1) / 2); printf "  %-8s captured %s (dropped %s)", t, c[m], d[m] }'
    awk -v t="$tool" '$1 == t' "$WORK/results" | sort -k6 -n | awk '
        { p[NR] = $6 } END { m = int((NR + 1) / 2); printf ", CPU %s us per captured packet\n", p[m] }'
done
"$PLUMB" down flood >/dev/null
