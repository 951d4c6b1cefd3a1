#!/usr/bin/env python3
"""bench/netns-gone.py: tells when the kernel has destroyed every released network namespace.

Run by bench/lib.sh as a coprocess inside a benchmark sandbox (root of a fresh user namespace).

The kernel charges each network namespace to the user namespace that created it and uncharges
it only at the very end of its destruction (cleanup_net: dec_net_namespaces, after the namespace's
devices are gone and after rcu_barrier). The charge is not readable, but it is enforced:
unshare(CLONE_NEWNET) fails with ENOSPC, before creating anything, while the count has reached
the user namespace's /proc/sys/user/max_net_namespaces. So with that limit set to B + 1, where B
is the number of namespaces that stay alive (the sandbox's own: 1), unshare succeeds exactly when
every other namespace of the sandbox has been destroyed. This program attempts it every
millisecond; a failed attempt changes nothing. The one namespace a successful attempt creates is
left at once (setns back), and the kernel destroys it in turn.

Commands, one per line on stdin; one answer line each on stdout:
  try   one attempt: "ok TIME" or "busy"
  go    attempt every ~1 ms until one succeeds: "ok TIME" (or "timeout" after 600 s)
TIME is the wall clock (seconds since the epoch, as bash's EPOCHREALTIME) of the success.
Anything unexpected: "error MESSAGE".
"""

import ctypes
import errno
import os
import sys
import time

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def attempt():
    """True if a new network namespace could be created (and was left again)."""
    if libc.unshare(CLONE_NEWNET) == 0:
        now = time.time()
        if libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the sandbox's namespace")
        return now
    err = ctypes.get_errno()
    if err != errno.ENOSPC:
        raise OSError(err, "unshare(CLONE_NEWNET)")
    return None


def answer(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


for cmd in sys.stdin:
    cmd = cmd.strip()
    try:
        if cmd == "try":
            t = attempt()
            answer("busy" if t is None else "ok %.6f" % t)
        elif cmd == "go":
            deadline = time.monotonic() + 600
            while True:
                t = attempt()
                if t is not None:
                    answer("ok %.6f" % t)
                    break
                if time.monotonic() > deadline:
                    answer("timeout")
                    break
                time.sleep(0.001)
        elif cmd:
            answer("error unknown command " + cmd)
    except OSError as e:
        answer("error %s: %s" % (e.strerror or e, e.args[-1] if e.args else ""))
