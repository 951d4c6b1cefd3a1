//! `AF_PACKET` sockets with a `TPACKET_V3` receive ring (`packet(7)`,
//! `Documentation/networking/packet_mmap.rst`): the socket, its options, the classic BPF
//! filter, the memory-mapped ring and the hand-over of blocks between the kernel and plumb.
//!
//! Invariants: a [`Ring`] owns its socket and its mapping and unmaps before closing; a block
//! is read only while its status says it belongs to user space, and is given back to the
//! kernel (status `TP_STATUS_KERNEL`) when the [`Block`] that borrows it is dropped. The
//! socket lives in the network namespace of the thread that opened it.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

/// `ETH_P_ALL` from `linux/if_ether.h`: every protocol.
const ETH_P_ALL: u16 = 0x0003;
/// `SOL_PACKET` from `linux/socket.h`.
const SOL_PACKET: libc::c_int = 263;
/// `PACKET_RX_RING` from `linux/if_packet.h`.
const PACKET_RX_RING: libc::c_int = 5;
/// `PACKET_STATISTICS`.
const PACKET_STATISTICS: libc::c_int = 6;
/// `PACKET_VERSION`.
const PACKET_VERSION: libc::c_int = 10;
/// `TPACKET_V3` (`enum tpacket_versions`).
const TPACKET_V3: libc::c_int = 2;
/// `TP_STATUS_KERNEL`.
const TP_STATUS_KERNEL: u32 = 0;
/// `TP_STATUS_USER`.
const TP_STATUS_USER: u32 = 1;
/// Offset of `hdr.bh1.block_status` in `struct tpacket_block_desc`.
const BLOCK_STATUS_OFFSET: usize = 8;

/// One classic BPF instruction (`struct sock_filter` from `linux/filter.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset when true.
    pub jt: u8,
    /// Jump offset when false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

/// `struct tpacket_req3`.
#[repr(C)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Default)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}

/// The geometry of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSize {
    /// Bytes per block (a multiple of the page size).
    pub block_size: u32,
    /// Blocks.
    pub block_nr: u32,
    /// How long the kernel keeps a partly filled block before handing it over, in ms.
    pub retire_ms: u32,
}

/// The kernel's packet counters since the previous call (reading resets them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets that passed the filter (including those dropped).
    pub packets: u32,
    /// Packets dropped because the ring was full.
    pub drops: u32,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The index of interface `name` in the calling thread's network namespace
/// (`if_nametoindex(3)`, which asks through a socket opened in that namespace).
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// Asks the kernel whether it accepts `filter`: attaches it to a throwaway UDP socket (no
/// privilege needed), which runs the kernel's classic BPF checker (`bpf_check_classic`).
pub fn check_filter(filter: &[SockFilter]) -> io::Result<()> {
    // SAFETY: plain syscall; the result is checked and owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(raw)?;
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let prog = SockFprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_ptr(),
    };
    setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// An `AF_PACKET` socket bound to one interface, with a `TPACKET_V3` ring mapped.
pub struct Ring {
    fd: OwnedFd,
    map: NonNull<u8>,
    map_len: usize,
    size: RingSize,
    next: u32,
}

// SAFETY: the mapping is owned by the ring and only reached through `&mut self`.
unsafe impl Send for Ring {}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("fd", &self.fd.as_raw_fd())
            .field("size", &self.size)
            .finish()
    }
}

fn setsockopt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: &T,
) -> io::Result<()> {
    // SAFETY: `v` points to a live value of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

impl Ring {
    /// Opens a ring on interface `ifindex` of the calling thread's namespace, with `filter`
    /// attached before the socket is bound, so no packet the filter refuses is ever queued.
    ///
    /// Equivalent to what libpcap does for `tcpdump -i IFACE` with a `TPACKET_V3` ring:
    /// `socket(AF_PACKET, SOCK_RAW, 0)`, `SO_ATTACH_FILTER`, `PACKET_VERSION`,
    /// `PACKET_RX_RING`, `mmap`, then `bind` to `ETH_P_ALL` on the interface.
    pub fn open(ifindex: u32, filter: &[SockFilter], size: RingSize) -> io::Result<Ring> {
        // SAFETY: plain syscall; the result is checked and owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        check(raw)?;
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if !filter.is_empty() {
            let prog = SockFprog {
                len: filter.len() as libc::c_ushort,
                filter: filter.as_ptr(),
            };
            setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
        }
        setsockopt(fd.as_fd(), SOL_PACKET, PACKET_VERSION, &TPACKET_V3)?;
        // TPACKET_V3 packs packets of any size into blocks; the frame fields only have to be
        // consistent with the block geometry.
        let frame_size = 2048u32.min(size.block_size);
        let req = TpacketReq3 {
            block_size: size.block_size,
            block_nr: size.block_nr,
            frame_size,
            frame_nr: size.block_size / frame_size * size.block_nr,
            retire_blk_tov: size.retire_ms,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        setsockopt(fd.as_fd(), SOL_PACKET, PACKET_RX_RING, &req)?;
        let map_len = size.block_size as usize * size.block_nr as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED,
                fd.as_raw_fd(),
                0,
            )
        };
        // MAP_LOCKED may be refused (RLIMIT_MEMLOCK): map without it then.
        let p = if p == libc::MAP_FAILED {
            // SAFETY: as above.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            }
        } else {
            p
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let ring = Ring {
            fd,
            map,
            map_len,
            size,
            next: 0,
        };
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a live sockaddr_ll of the size passed.
        check(unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(ring)
    }

    /// The socket (to wait on it with `poll`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The geometry.
    pub fn size(&self) -> RingSize {
        self.size
    }

    fn status(&self, block: u32) -> &AtomicU32 {
        let off = block as usize * self.size.block_size as usize + BLOCK_STATUS_OFFSET;
        // SAFETY: `off` is inside the mapping (block < block_nr), 4-byte aligned (blocks are
        // page-aligned), and the kernel only ever accesses this word atomically.
        unsafe { &*self.map.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// The next block the kernel has handed over, if any; blocks come in ring order.
    pub fn next_block(&mut self) -> Option<Block<'_>> {
        let status = self.status(self.next).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        // The kernel filled the block before setting its status: read after that.
        fence(Ordering::Acquire);
        let i = self.next;
        self.next = (self.next + 1) % self.size.block_nr;
        let len = self.size.block_size as usize;
        // SAFETY: block `i` starts inside the mapping (i < block_nr).
        let start = unsafe { self.map.add(i as usize * len) };
        Some(Block {
            start,
            len,
            status: self.status(i),
        })
    }

    /// The kernel's counters since the last call (`PACKET_STATISTICS`, which resets them).
    pub fn stats(&self) -> io::Result<Stats> {
        let mut st = TpacketStatsV3::default();
        let mut len = std::mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
        // SAFETY: `st` and `len` are live and describe a buffer of the right size.
        check(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                (&mut st as *mut TpacketStatsV3).cast(),
                &mut len,
            )
        })?;
        let _ = st.freeze_q_cnt;
        Ok(Stats {
            packets: st.packets,
            drops: st.drops,
        })
    }
}

impl AsFd for Ring {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `open` with this length and is not used after this;
        // no `Block` can outlive `&mut self`.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.map_len);
        }
    }
}

/// A block of the ring that belongs to user space until dropped (it borrows the ring
/// mutably, so no other block is taken meanwhile).
pub struct Block<'a> {
    start: NonNull<u8>,
    len: usize,
    status: &'a AtomicU32,
}

impl Block<'_> {
    /// The block's bytes: a `struct tpacket_block_desc` followed by its packets.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the block lies inside the mapping; while its status says TP_STATUS_USER the
        // kernel does not write to it, and the slice cannot outlive `self`, whose drop (the
        // only write, to the status word) needs it gone.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        self.status.store(TP_STATUS_KERNEL, Ordering::Release);
    }
}
