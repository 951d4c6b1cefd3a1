//! Parsers of single values: CIDR addresses and prefixes, IP addresses, MACs, sysctl keys, ports,
//! protocols (`tcp/80`), firewall rules (`udp/53 from 10.0.0.0/8`) and published ports
//! (`8080:web:80/tcp`). Each returns the [`DiagnosticKind`] that says what is wrong.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::model::error::DiagnosticKind;
use crate::model::names::NsName;
use crate::model::types::{FirewallRule, MacAddr, Proto, Publish, Service};

/// `10.0.0.1/24`; a bare address is refused with a hint that only the prefix is missing.
pub(super) fn parse_cidr(text: &str) -> Result<IpNet, DiagnosticKind> {
    IpNet::from_str(text).map_err(|_| DiagnosticKind::NotCidr {
        text: text.to_owned(),
        missing_prefix: IpAddr::from_str(text).is_ok(),
    })
}

/// A CIDR prefix with no bits set after the prefix (`10.0.0.0/24`, not `10.0.0.5/24`).
pub(super) fn parse_network(text: &str, what: &'static str) -> Result<IpNet, DiagnosticKind> {
    let net = parse_cidr(text)?;
    if net.trunc() != net {
        return Err(DiagnosticKind::HostBitsSet {
            what,
            text: text.to_owned(),
            network: net.trunc(),
        });
    }
    Ok(net)
}

pub(super) fn parse_destination(text: &str) -> Result<IpNet, DiagnosticKind> {
    match parse_network(text, "route destination") {
        Err(DiagnosticKind::NotCidr {
            missing_prefix: false,
            ..
        }) => Err(DiagnosticKind::BadRouteDestination {
            text: text.to_owned(),
        }),
        other => other,
    }
}

pub(super) fn parse_ip(text: &str, what: &'static str) -> Result<IpAddr, DiagnosticKind> {
    IpAddr::from_str(text).map_err(|_| DiagnosticKind::NotIp {
        what,
        text: text.to_owned(),
    })
}

pub(super) fn parse_mac(text: &str) -> Result<MacAddr, DiagnosticKind> {
    let mac = MacAddr::from_str(text).map_err(|()| DiagnosticKind::BadMac {
        text: text.to_owned(),
    })?;
    if mac.0[0] & 1 == 1 {
        return Err(DiagnosticKind::MulticastMac {
            text: text.to_owned(),
        });
    }
    Ok(mac)
}

/// `net.` then dot-separated segments of `[a-zA-Z0-9_-]`.
pub(super) fn check_sysctl(key: &str) -> Result<(), &'static str> {
    if !key.starts_with("net.") {
        return Err("is not a `net.` sysctl: only network sysctls are per namespace");
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !key.split('.').all(segment_ok) {
        return Err(
            "must be dot-separated words of letters, digits, `_` and `-` (no `..`, no `/`)",
        );
    }
    Ok(())
}

fn parse_port(text: &str) -> Option<u16> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&p| p != 0)
}

/// `icmp`, `tcp/PORT`, `udp/PORT`.
pub(super) fn parse_service(text: &str) -> Result<Service, DiagnosticKind> {
    service(text, false)
}

fn service(text: &str, firewall: bool) -> Result<Service, DiagnosticKind> {
    let bad = |reason| DiagnosticKind::BadService {
        text: text.to_owned(),
        reason,
        firewall,
    };
    if text == "icmp" {
        return Ok(Service::Icmp);
    }
    let (proto, port) = text
        .split_once('/')
        .ok_or_else(|| bad("it is not `icmp` and has no `/PORT`"))?;
    let port = parse_port(port).ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
    match proto {
        "tcp" => Ok(Service::Tcp(port)),
        "udp" => Ok(Service::Udp(port)),
        _ => Err(bad("the protocol is not `tcp` or `udp`")),
    }
}

/// `udp/53 from 10.88.0.0/16`.
pub(super) fn parse_rule(text: &str) -> Result<FirewallRule, DiagnosticKind> {
    let mut words = text.split_whitespace();
    let bad = |reason| DiagnosticKind::BadService {
        text: text.to_owned(),
        reason,
        firewall: true,
    };
    let service =
        service(words.next().ok_or_else(|| bad("it is empty"))?, true).map_err(|e| match e {
            DiagnosticKind::BadService { reason, .. } => bad(reason),
            other => other,
        })?;
    let from = match (words.next(), words.next(), words.next()) {
        (None, _, _) => None,
        (Some("from"), Some(cidr), None) => Some(
            IpNet::from_str(cidr)
                .map_err(|_| bad("the address after `from` is not a CIDR prefix"))?,
        ),
        _ => return Err(bad("only `from CIDR` may follow the protocol")),
    };
    Ok(FirewallRule { service, from })
}

/// `8080:web:80/tcp`.
pub(super) fn parse_publish(text: &str) -> Result<Publish, DiagnosticKind> {
    let bad = |reason| DiagnosticKind::BadPublish {
        text: text.to_owned(),
        reason,
    };
    let (spec, proto) = match text.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Proto::Tcp),
        Some((spec, "udp")) => (spec, Proto::Udp),
        Some(_) => return Err(bad("has a protocol other than `tcp` or `udp`")),
        None => (text, Proto::Tcp),
    };
    let mut parts = spec.split(':');
    let (Some(host_port), Some(member), Some(port), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("is not of the form `HOSTPORT:MEMBER:PORT`"));
    };
    let host_port = parse_port(host_port)
        .ok_or_else(|| bad("has a host port that is not a number from 1 to 65535"))?;
    let port = parse_port(port)
        .ok_or_else(|| bad("has a member port that is not a number from 1 to 65535"))?;
    let member = NsName::new(member).map_err(DiagnosticKind::BadName)?;
    Ok(Publish {
        host_port,
        member,
        port,
        proto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cidr_bare_address_says_prefix_missing() {
        assert_eq!(
            parse_cidr("10.0.0.1"),
            Err(DiagnosticKind::NotCidr {
                text: "10.0.0.1".into(),
                missing_prefix: true
            })
        );
        assert!(matches!(
            parse_cidr("10.0.0/8"),
            Err(DiagnosticKind::NotCidr {
                missing_prefix: false,
                ..
            })
        ));
        assert!(parse_cidr("fd00::1/64").is_ok());
    }

    #[test]
    fn parse_network_host_bits_are_refused() {
        assert!(matches!(
            parse_network("10.0.0.5/24", "subnet"),
            Err(DiagnosticKind::HostBitsSet { .. })
        ));
        assert!(parse_network("10.0.0.0/24", "subnet").is_ok());
    }

    #[test]
    fn parse_publish_defaults_to_tcp() {
        let p = parse_publish("8080:web:80").unwrap();
        assert_eq!(
            (p.host_port, p.member.as_str(), p.port, p.proto),
            (8080, "web", 80, Proto::Tcp)
        );
        assert_eq!(parse_publish("53:dns:53/udp").unwrap().proto, Proto::Udp);
        assert!(parse_publish("8080:web").is_err());
        assert!(parse_publish("0:web:80").is_err());
        assert!(parse_publish("8080:web:80/sctp").is_err());
    }

    #[test]
    fn parse_rule_accepts_from_prefix() {
        let r = parse_rule("udp/53 from 10.88.0.0/16").unwrap();
        assert_eq!(r.service, Service::Udp(53));
        assert_eq!(r.from, Some("10.88.0.0/16".parse().unwrap()));
        assert_eq!(parse_rule("icmp").unwrap().service, Service::Icmp);
        assert!(parse_rule("tcp/80 to 10.0.0.0/8").is_err());
        assert!(parse_rule("tcp/x").is_err());
    }

    #[test]
    fn check_sysctl_requires_net_dotted_words() {
        assert!(check_sysctl("net.ipv4.ip_forward").is_ok());
        assert!(check_sysctl("net.ipv4.conf.all.rp_filter").is_ok());
        assert!(check_sysctl("kernel.panic").is_err());
        assert!(check_sysctl("net.ipv4..x").is_err());
        assert!(check_sysctl("net.ipv4/../x").is_err());
    }

    #[test]
    fn parse_mac_multicast_is_refused() {
        assert!(parse_mac("02:00:00:00:00:01").is_ok());
        assert!(matches!(
            parse_mac("01:00:5e:00:00:01"),
            Err(DiagnosticKind::MulticastMac { .. })
        ));
        assert!(matches!(
            parse_mac("02:00:00:00:00"),
            Err(DiagnosticKind::BadMac { .. })
        ));
    }
}
