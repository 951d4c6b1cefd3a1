//! Built-in IPAM, compatible with the reference `host-local` plugin's store: a directory per
//! network under `dataDir` (default `/var/lib/cni/networks`) holding one file per reserved
//! address (named by the address, containing `CONTAINERID\r\nIFNAME`), `last_reserved_ip.N`
//! per range set, and a `lock` file taken with `flock` for the whole of an operation (the same
//! lock `host-local` takes, so both can share a network).
//!
//! Allocation is round-robin as in `host-local`: from the address after the last one reserved
//! in the set, over every range of the set, skipping the gateway and reserved addresses; the
//! network and broadcast addresses are never in a range.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::error::{code, CniError};
use super::spec::{IpamConf, RangeConf};

/// The reference plugins' default store.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One usable range, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet (the addresses get its prefix length).
    pub subnet: IpNet,
    /// First address handed out.
    pub start: IpAddr,
    /// Last address handed out.
    pub end: IpAddr,
    /// Gateway (never handed out).
    pub gateway: IpAddr,
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(v.into()),
    }
}

impl Range {
    /// Resolves `host-local`'s defaults: start after the network address, end before the
    /// broadcast address (IPv4) or at the last address (IPv6), gateway the first address.
    pub fn resolve(c: &RangeConf) -> Result<Range, CniError> {
        let subnet = c
            .subnet
            .ok_or_else(|| CniError::config("ipam: a range needs a subnet"))?
            .trunc();
        let net = to_u128(subnet.network());
        let last = to_u128(subnet.broadcast());
        if last - net < 2 {
            return Err(CniError::config(format!(
                "ipam: subnet {subnet} is too small to hand out addresses"
            )));
        }
        let first_host = net + 1;
        let last_host = if subnet.addr().is_ipv4() {
            last - 1
        } else {
            last
        };
        let inside = |a: IpAddr, what: &str| {
            if subnet.contains(&a) && a.is_ipv4() == subnet.addr().is_ipv4() {
                Ok(a)
            } else {
                Err(CniError::config(format!(
                    "ipam: {what} {a} is not in subnet {subnet}"
                )))
            }
        };
        let start = match c.range_start {
            Some(a) => inside(a, "rangeStart")?,
            None => from_u128(first_host, subnet.addr()),
        };
        let end = match c.range_end {
            Some(a) => inside(a, "rangeEnd")?,
            None => from_u128(last_host, subnet.addr()),
        };
        if to_u128(start) > to_u128(end) || to_u128(start) < first_host || to_u128(end) > last_host
        {
            return Err(CniError::config(format!(
                "ipam: range {start}-{end} is not a range of host addresses of {subnet}"
            )));
        }
        let gateway = match c.gateway {
            Some(g) => inside(g, "gateway")?,
            None => from_u128(first_host, subnet.addr()),
        };
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }

    /// Whether `a` is one of the range's addresses.
    pub fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.start.is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(a))
    }

    /// How many addresses it can hand out (without the gateway).
    pub fn capacity(&self) -> u128 {
        let n = to_u128(self.end) - to_u128(self.start) + 1;
        if self.contains(self.gateway) {
            n - 1
        } else {
            n
        }
    }
}

/// The range sets of `ipam`: the flat form is one set of one range.
pub fn range_sets(ipam: &IpamConf) -> Result<Vec<Vec<Range>>, CniError> {
    let mut sets = Vec::new();
    if ipam.range.subnet.is_some() {
        sets.push(vec![Range::resolve(&ipam.range)?]);
    }
    for set in &ipam.ranges {
        if set.is_empty() {
            return Err(CniError::config("ipam: an empty range set"));
        }
        sets.push(set.iter().map(Range::resolve).collect::<Result<_, _>>()?);
    }
    if sets.is_empty() {
        return Err(CniError::config("ipam: no subnet and no ranges"));
    }
    Ok(sets)
}

/// One reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The address.
    pub ip: IpAddr,
    /// Its container.
    pub container_id: String,
    /// Its interface.
    pub ifname: String,
}

/// A network's store, locked for as long as this value lives.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: fs::File,
}

impl Store {
    /// Opens (creating) `DATA_DIR/NETWORK` and takes its lock, waiting for other plugins.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, CniError> {
        let dir = data_dir.join(network);
        fs::create_dir_all(&dir)
            .map_err(|e| CniError::io(format!("cannot create IPAM store {}", dir.display()), &e))?;
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| CniError::io(format!("cannot open {}", lock_path.display()), &e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            CniError::io(
                format!("cannot lock {}", lock_path.display()),
                &io::Error::from(e),
            )
        })?;
        Ok(Store { dir, _lock: lock })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every reservation.
    pub fn reservations(&self) -> Result<Vec<Reservation>, CniError> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| CniError::io(format!("cannot list {}", self.dir.display()), &e))?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(ip) = name.to_str().and_then(|s| s.parse::<IpAddr>().ok()) else {
                continue;
            };
            let text = match fs::read_to_string(e.path()) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => {
                    return Err(CniError::io(
                        format!("cannot read {}", e.path().display()),
                        &err,
                    ))
                }
            };
            let mut lines = text.lines().map(str::trim);
            out.push(Reservation {
                ip,
                container_id: lines.next().unwrap_or_default().to_string(),
                ifname: lines.next().unwrap_or_default().to_string(),
            });
        }
        out.sort_by_key(|r| (r.ip.is_ipv6(), to_u128(r.ip)));
        Ok(out)
    }

    fn reserve(&self, ip: IpAddr, cid: &str, ifname: &str, set: usize) -> Result<bool, CniError> {
        let path = self.dir.join(ip.to_string());
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(format!("{cid}\r\n{ifname}").as_bytes())
                    .map_err(|e| CniError::io(format!("cannot write {}", path.display()), &e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => {
                return Err(CniError::io(
                    format!("cannot create {}", path.display()),
                    &e,
                ))
            }
        }
        let last = self.dir.join(format!("last_reserved_ip.{set}"));
        fs::write(&last, ip.to_string())
            .map_err(|e| CniError::io(format!("cannot write {}", last.display()), &e))?;
        Ok(true)
    }

    fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        fs::read_to_string(self.dir.join(format!("last_reserved_ip.{set}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Reserves one address of range set `set` for the attachment: `requested` if given (it must
    /// be in the set and free), else the next free one after the last reserved.
    pub fn allocate(
        &self,
        ranges: &[Range],
        set: usize,
        requested: Option<IpAddr>,
        cid: &str,
        ifname: &str,
    ) -> Result<(IpNet, Range), CniError> {
        let with_prefix = |ip: IpAddr, r: &Range| {
            (
                IpNet::new(ip, r.subnet.prefix_len()).unwrap_or(r.subnet),
                r.clone(),
            )
        };
        if let Some(ip) = requested {
            let r = ranges.iter().find(|r| r.contains(ip)).ok_or_else(|| {
                CniError::new(
                    code::INTERNAL,
                    format!(
                        "requested IP address {ip} is not in range set {}",
                        describe(ranges)
                    ),
                )
            })?;
            if ip == r.gateway || !self.reserve(ip, cid, ifname, set)? {
                return Err(CniError::new(
                    code::INTERNAL,
                    format!(
                        "requested IP address {ip} is not available in range set {}",
                        describe(ranges)
                    ),
                ));
            }
            return Ok(with_prefix(ip, r));
        }
        // Round robin: the ranges in order, starting after the last reservation of the set.
        let (mut ri, mut cur) = match self.last_reserved(set) {
            Some(last) => match ranges.iter().position(|r| r.contains(last)) {
                Some(i) => (i, to_u128(last) + 1),
                None => (0, to_u128(ranges[0].start)),
            },
            None => (0, to_u128(ranges[0].start)),
        };
        let total: u128 = ranges
            .iter()
            .map(|r| to_u128(r.end) - to_u128(r.start) + 1)
            .sum();
        let mut tried: u128 = 0;
        while tried <= total {
            let r = &ranges[ri];
            if cur > to_u128(r.end) || cur < to_u128(r.start) {
                ri = (ri + 1) % ranges.len();
                cur = to_u128(ranges[ri].start);
                continue;
            }
            tried += 1;
            let ip = from_u128(cur, r.start);
            cur += 1;
            if ip == r.gateway {
                continue;
            }
            if self.reserve(ip, cid, ifname, set)? {
                return Ok(with_prefix(ip, r));
            }
        }
        Err(CniError::new(
            code::INTERNAL,
            format!(
                "no IP addresses available in range set: {}",
                describe(ranges)
            ),
        ))
    }

    /// How many addresses of each range set are free.
    pub fn free(&self, sets: &[Vec<Range>]) -> Result<Vec<u128>, CniError> {
        let held = self.reservations()?;
        Ok(sets
            .iter()
            .map(|set| {
                let cap: u128 = set.iter().map(Range::capacity).sum();
                let used = held
                    .iter()
                    .filter(|h| set.iter().any(|r| r.contains(h.ip) && h.ip != r.gateway))
                    .count() as u128;
                cap.saturating_sub(used)
            })
            .collect())
    }

    /// Releases the reservations of an attachment; returns the addresses released.
    pub fn release(&self, cid: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        let mut out = Vec::new();
        for r in self.reservations()? {
            if r.container_id == cid && r.ifname == ifname {
                self.release_ip(r.ip)?;
                out.push(r.ip);
            }
        }
        Ok(out)
    }

    /// Whose `ip` is: `None` if it is not reserved.
    pub fn holder(&self, ip: IpAddr) -> Result<Option<(String, String)>, CniError> {
        let path = self.dir.join(ip.to_string());
        match fs::read_to_string(&path) {
            Ok(t) => {
                let mut l = t.lines().map(str::trim);
                let cid = l.next().unwrap_or_default().to_string();
                Ok(Some((cid, l.next().unwrap_or_default().to_string())))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CniError::io(format!("cannot read {}", path.display()), &e)),
        }
    }

    /// Releases the attachment's reservations among `known` (its addresses as plumb recorded
    /// them or `prevResult` names them), reading only those files; without any, every
    /// reservation is read ([`Store::release`]).
    pub fn release_known(
        &self,
        cid: &str,
        ifname: &str,
        known: &[IpAddr],
    ) -> Result<Vec<IpAddr>, CniError> {
        if known.is_empty() {
            return self.release(cid, ifname);
        }
        let mut out = Vec::new();
        for ip in known {
            if self
                .holder(*ip)?
                .is_some_and(|(c, i)| c == cid && i == ifname)
            {
                self.release_ip(*ip)?;
                out.push(*ip);
            }
        }
        Ok(out)
    }

    /// Releases one address (no error if it is not reserved).
    pub fn release_ip(&self, ip: IpAddr) -> Result<(), CniError> {
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CniError::io(
                format!("cannot remove {}", path.display()),
                &e,
            )),
        }
    }
}

/// `START-END,START-END` as `host-local` names a range set in errors.
fn describe(ranges: &[Range]) -> String {
    ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(subnet: &str) -> Range {
        Range::resolve(&RangeConf {
            subnet: Some(subnet.parse().unwrap()),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn defaults_skip_network_gateway_and_broadcast() {
        let r = range("10.1.0.0/24");
        assert_eq!(r.start.to_string(), "10.1.0.1");
        assert_eq!(r.end.to_string(), "10.1.0.254");
        assert_eq!(r.gateway.to_string(), "10.1.0.1");
        assert_eq!(r.capacity(), 253);
        assert_eq!(range("10.1.0.0/30").capacity(), 1);
    }

    #[test]
    fn allocation_is_round_robin_and_released_addresses_come_last() {
        let dir = plumb_testkit::TempDir::new();
        let store = Store::open(dir.path(), "n").unwrap();
        let rs = vec![range("10.1.0.0/29")];
        let a = store.allocate(&rs, 0, None, "c1", "eth0").unwrap().0;
        let b = store.allocate(&rs, 0, None, "c2", "eth0").unwrap().0;
        assert_eq!(
            (a.to_string().as_str(), b.to_string().as_str()),
            ("10.1.0.2/29", "10.1.0.3/29")
        );
        assert_eq!(store.release("c1", "eth0").unwrap(), vec![a.addr()]);
        let c = store.allocate(&rs, 0, None, "c3", "eth0").unwrap().0;
        assert_eq!(c.to_string(), "10.1.0.4/29");
        // .5 and .6 left, then the round wraps to the freed .2.
        store.allocate(&rs, 0, None, "c4", "eth0").unwrap();
        store.allocate(&rs, 0, None, "c5", "eth0").unwrap();
        let d = store.allocate(&rs, 0, None, "c6", "eth0").unwrap().0;
        assert_eq!(d.to_string(), "10.1.0.2/29");
        let e = store.allocate(&rs, 0, None, "c7", "eth0").unwrap_err();
        assert!(e.msg.contains("no IP addresses available"), "{e}");
        assert_eq!(store.free(&[rs]).unwrap(), vec![0]);
    }

    #[test]
    fn requested_address_must_be_free_and_in_range() {
        let dir = plumb_testkit::TempDir::new();
        let store = Store::open(dir.path(), "n").unwrap();
        let rs = vec![range("10.1.0.0/24")];
        let ip: IpAddr = "10.1.0.77".parse().unwrap();
        assert_eq!(
            store
                .allocate(&rs, 0, Some(ip), "c1", "eth0")
                .unwrap()
                .0
                .addr(),
            ip
        );
        assert!(store.allocate(&rs, 0, Some(ip), "c2", "eth0").is_err());
        assert!(store
            .allocate(&rs, 0, Some("10.2.0.1".parse().unwrap()), "c2", "eth0")
            .is_err());
        let text = fs::read_to_string(dir.path().join("n/10.1.0.77")).unwrap();
        assert_eq!(text, "c1\r\neth0");
    }
}
