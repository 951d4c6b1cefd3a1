#!/usr/bin/env python3
"""bench/ns-config.py: the in-namespace half of bench/star-8000.sh's kernel-cost probe.

`ip -batch` runs every command in one namespace, so it cannot configure the inside of N
namespaces without N processes; this does it from one process, over raw netlink, so that what
is timed is the kernel's work plus a few microseconds of Python per namespace.

Usage: ns-config.py PHASE COUNT [MEMBERS_PER_NETWORK]   (run as root inside the sandbox)
For each namespace /run/netns/c1 .. cCOUNT: enter it (setns), open a NETLINK_ROUTE socket there,
send the phase's two requests in one sendmsg and read both acknowledgements:
  tag    eth0: alias + IPv6 address generation off (addrgenmode none); lo: alias
  up     lo up, eth0 up
  addr   eth0's address (member I of network K = 1 + (I-1) / MEMBERS gets the K-th /22 of
         10.100.0.0/16, from .2 on) and a default route via the network's gateway (.1), proto 250
Prints the seconds the loop took (excluding interpreter start-up).
"""

import ctypes
import os
import socket
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 1, 4, 0x200, 0x400
NLMSG_ERROR = 2
IFLA_IFALIAS, IFLA_AF_SPEC = 20, 26
IFLA_INET6_ADDR_GEN_MODE = 8
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
IFF_UP = 1
ALIAS = b"plumb:kprobe"

libc = ctypes.CDLL(None, use_errno=True)


def attr(kind, data):
    head = struct.pack("HH", 4 + len(data), kind)
    return head + data + b"\0" * (-(4 + len(data)) % 4)


def msg(kind, flags, seq, body):
    return struct.pack("IHHII", 16 + len(body), kind, flags, seq, 0) + body


def link(seq, index, flags=0, change=0, attrs=b""):
    body = struct.pack("BxHiII", socket.AF_UNSPEC, 0, index, flags, change) + attrs
    return msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def requests(phase, i, per):
    eth0 = socket.if_nametoindex("eth0")
    if phase == "tag":
        af = attr(IFLA_AF_SPEC, attr(socket.AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE, b"\1")))
        return [link(1, eth0, attrs=attr(IFLA_IFALIAS, ALIAS) + af),
                link(2, 1, attrs=attr(IFLA_IFALIAS, ALIAS))]
    if phase == "up":
        return [link(1, 1, IFF_UP, IFF_UP), link(2, eth0, IFF_UP, IFF_UP)]
    k, j = divmod(i - 1, per)
    base = (10 << 24) | (100 << 16) | ((4 * k) << 8)
    addr = struct.pack("!I", base + j + 2)
    gw = struct.pack("!I", base + 1)
    create = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
    ifa = struct.pack("BBBBI", socket.AF_INET, 22, 0, 0, eth0)
    rtm = struct.pack("BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 250, 0, 1, 0)
    return [msg(RTM_NEWADDR, create, 1, ifa + attr(IFA_LOCAL, addr) + attr(IFA_ADDRESS, addr)),
            msg(RTM_NEWROUTE, create, 2, rtm + attr(RTA_GATEWAY, gw))]


def acks(sock, want):
    got = 0
    while got < want:
        data = sock.recv(65536)
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("IH", data, off)
            if kind == NLMSG_ERROR:
                err = struct.unpack_from("i", data, off + 16)[0]
                if err:
                    raise OSError(-err, os.strerror(-err))
                got += 1
            off += (length + 3) & ~3


def main():
    phase, count = sys.argv[1], int(sys.argv[2])
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    if phase not in ("tag", "up", "addr"):
        sys.exit("ns-config.py: PHASE is tag, up or addr")
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    t0 = time.perf_counter()
    for i in range(1, count + 1):
        fd = os.open("/run/netns/c%d" % i, os.O_RDONLY | os.O_CLOEXEC)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            sys.exit("ns-config.py: setns c%d: %s" % (i, os.strerror(ctypes.get_errno())))
        os.close(fd)
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
            reqs = requests(phase, i, per)
            try:
                s.sendall(b"".join(reqs))
                acks(s, len(reqs))
            except OSError as e:
                sys.exit("ns-config.py: %s in c%d: %s" % (phase, i, e))
    libc.setns(home, CLONE_NEWNET)
    print("%.6f" % (time.perf_counter() - t0))


main()
