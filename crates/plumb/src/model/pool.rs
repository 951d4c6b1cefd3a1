//! The address pool of a network's subnet: which addresses the gateway and members may have.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::model::error::DiagnosticKind;

/// The host addresses of a subnet as integers: `first..=last` are usable, the network address
/// (and for IPv4 the broadcast address) excluded, except in /31, /32 and /128.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pool {
    subnet: IpNet,
    v6: bool,
    network: u128,
    broadcast: u128,
    first: u128,
    last: u128,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        // Pool values of an IPv4 subnet are below 2^32.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

impl Pool {
    pub(crate) fn new(subnet: IpNet) -> Self {
        let v6 = subnet.addr().is_ipv6();
        let network = to_u128(subnet.network());
        let broadcast = to_u128(subnet.broadcast());
        let (first, last) = match (v6, subnet.prefix_len()) {
            (false, 31) | (false, 32) | (true, 128) => (network, broadcast),
            (false, _) => (network + 1, broadcast - 1),
            (true, _) => (network + 1, broadcast),
        };
        Pool {
            subnet,
            v6,
            network,
            broadcast,
            first,
            last,
        }
    }

    pub(crate) fn first(&self) -> IpAddr {
        from_u128(self.first, self.v6)
    }

    pub(crate) fn check_gateway(&self, gw: IpAddr) -> Result<(), DiagnosticKind> {
        let subnet = self.subnet;
        let n = to_u128(gw);
        if gw.is_ipv6() != self.v6 || n < self.network || n > self.broadcast {
            return Err(DiagnosticKind::GatewayOutsideSubnet {
                gateway: gw,
                subnet,
            });
        }
        if n < self.first || n > self.last {
            let which = if n == self.network {
                "network"
            } else {
                "broadcast"
            };
            return Err(DiagnosticKind::GatewayNotHost {
                gateway: gw,
                which,
                subnet,
            });
        }
        Ok(())
    }

    /// Usable addresses left for members once the gateway has its own.
    pub(crate) fn free(&self, gateway: IpAddr) -> u128 {
        let count = (self.last - self.first).saturating_add(1);
        let g = to_u128(gateway);
        if (self.first..=self.last).contains(&g) {
            count - 1
        } else {
            count
        }
    }

    /// Whether `a` is a usable host address of the subnet (the gateway included).
    pub(crate) fn contains_host(&self, a: IpAddr) -> bool {
        a.is_ipv6() == self.v6 && (self.first..=self.last).contains(&to_u128(a))
    }

    /// Member addresses in order, skipping the gateway.
    pub(crate) fn addresses(&self, gateway: IpAddr) -> impl Iterator<Item = IpAddr> {
        let g = to_u128(gateway);
        let (v6, first, last) = (self.v6, self.first, self.last);
        (first..=last)
            .filter(move |&n| n != g)
            .map(move |n| from_u128(n, v6))
    }
}

/// The longest-prefix subnet at the same address that holds `members` and a gateway.
pub(crate) fn fitting_subnet(subnet: IpNet, members: usize) -> Option<IpNet> {
    let needed = members as u128 + 1;
    let max = subnet.max_prefix_len();
    (0..=max).rev().find_map(|prefix| {
        let candidate = IpNet::new(subnet.network(), prefix).ok()?.trunc();
        (Pool::new(candidate).free(Pool::new(candidate).first()) + 1 >= needed).then_some(candidate)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pool_ipv4_skips_network_gateway_and_broadcast() {
        let pool = Pool::new(net("10.0.0.0/29"));
        assert_eq!(pool.first(), ip("10.0.0.1"));
        let addrs: Vec<_> = pool.addresses(ip("10.0.0.1")).collect();
        assert_eq!(addrs.first(), Some(&ip("10.0.0.2")));
        assert_eq!(addrs.last(), Some(&ip("10.0.0.6")));
        assert_eq!(addrs.len(), 5);
        assert_eq!(pool.free(ip("10.0.0.1")), 5);
    }

    #[test]
    fn pool_gateway_in_the_middle_is_skipped() {
        let pool = Pool::new(net("10.0.0.0/29"));
        let addrs: Vec<_> = pool.addresses(ip("10.0.0.3")).collect();
        assert_eq!(
            addrs,
            [
                ip("10.0.0.1"),
                ip("10.0.0.2"),
                ip("10.0.0.4"),
                ip("10.0.0.5"),
                ip("10.0.0.6")
            ]
        );
    }

    #[test]
    fn pool_ipv6_has_no_broadcast() {
        let pool = Pool::new(net("fd00::/126"));
        let addrs: Vec<_> = pool.addresses(pool.first()).collect();
        assert_eq!(addrs, [ip("fd00::2"), ip("fd00::3")]);
    }

    #[test]
    fn pool_gateway_outside_or_on_network_address_is_refused() {
        let pool = Pool::new(net("10.0.0.0/24"));
        assert!(matches!(
            pool.check_gateway(ip("10.0.1.1")),
            Err(DiagnosticKind::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            pool.check_gateway(ip("fd00::1")),
            Err(DiagnosticKind::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            pool.check_gateway(ip("10.0.0.0")),
            Err(DiagnosticKind::GatewayNotHost {
                which: "network",
                ..
            })
        ));
        assert!(matches!(
            pool.check_gateway(ip("10.0.0.255")),
            Err(DiagnosticKind::GatewayNotHost {
                which: "broadcast",
                ..
            })
        ));
        assert!(pool.check_gateway(ip("10.0.0.254")).is_ok());
    }

    #[test]
    fn fitting_subnet_is_the_longest_prefix_that_holds_members_and_gateway() {
        // 3 members + gateway = 4 hosts: a /29 (6 hosts); a /30 has only 2.
        assert_eq!(
            fitting_subnet(net("10.0.0.0/30"), 3),
            Some(net("10.0.0.0/29"))
        );
        // 1000 members + gateway: /22 has 1022 hosts.
        assert_eq!(
            fitting_subnet(net("10.200.0.0/24"), 1000),
            Some(net("10.200.0.0/22"))
        );
        assert_eq!(
            fitting_subnet(net("10.200.0.0/24"), 1022),
            Some(net("10.200.0.0/21"))
        );
    }
}
