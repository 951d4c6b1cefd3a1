//! Rules as text: each [`Rule`]'s one-line description (its comment in the kernel, parsed back
//! by `show`), and a [`Table`] as the `nft` script that makes it, which `up --dry-run` prints.
//! The script and the JSON batch describe the same transaction; a sandboxed test applies both
//! and compares what the kernel lists.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use ipnet::IpNet;

use super::{Rule, Table};
use crate::model::{Proto, Service};

fn proto_word(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

fn service_word(s: Service) -> String {
    match s {
        Service::Icmp => "icmp".into(),
        Service::Tcp(p) => format!("tcp/{p}"),
        Service::Udp(p) => format!("udp/{p}"),
    }
}

impl fmt::Display for Rule {
    /// `masquerade from 10.88.0.0/24 unless out plumb0`, `publish tcp 8080 to 10.88.0.2 port
    /// 80`, `isolate plumb0`, `allow tcp/80 from 10.0.0.0/8`…
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Masquerade { subnet, bridge } => {
                write!(f, "masquerade from {subnet} unless out {bridge}")
            }
            Rule::HairpinMasquerade { subnet, bridge } => {
                write!(f, "hairpin-masquerade from {subnet} out {bridge}")
            }
            Rule::Publish {
                proto,
                host_port,
                to,
                port,
            } => write!(
                f,
                "publish {} {host_port} to {to} port {port}",
                proto_word(*proto)
            ),
            Rule::IsolateNetwork { bridge } => write!(f, "isolate {bridge}"),
            Rule::Allow { service, from } => {
                write!(f, "allow {}", service_word(*service))?;
                if let Some(from) = from {
                    write!(f, " from {from}")?;
                }
                Ok(())
            }
        }
    }
}

/// A comment that is not one of plumb's rule descriptions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a rule description of plumb's")]
pub struct NotARule(String);

impl FromStr for Rule {
    type Err = NotARule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NotARule(s.to_owned());
        let w: Vec<&str> = s.split_whitespace().collect();
        let net = |t: &str| t.parse::<IpNet>().map_err(|_| bad());
        let port = |t: &str| t.parse::<u16>().map_err(|_| bad());
        let proto = |t: &str| match t {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(bad()),
        };
        match w.as_slice() {
            ["masquerade", "from", subnet, "unless", "out", bridge] => Ok(Rule::Masquerade {
                subnet: net(subnet)?,
                bridge: (*bridge).to_owned(),
            }),
            ["hairpin-masquerade", "from", subnet, "out", bridge] => Ok(Rule::HairpinMasquerade {
                subnet: net(subnet)?,
                bridge: (*bridge).to_owned(),
            }),
            ["publish", p, host_port, "to", to, "port", to_port] => Ok(Rule::Publish {
                proto: proto(p)?,
                host_port: port(host_port)?,
                to: to.parse().map_err(|_| bad())?,
                port: port(to_port)?,
            }),
            ["isolate", bridge] => Ok(Rule::IsolateNetwork {
                bridge: (*bridge).to_owned(),
            }),
            ["allow", service, rest @ ..] => {
                let service = match service.split_once('/') {
                    None if *service == "icmp" => Service::Icmp,
                    Some(("tcp", p)) => Service::Tcp(port(p)?),
                    Some(("udp", p)) => Service::Udp(port(p)?),
                    _ => return Err(bad()),
                };
                let from = match rest {
                    [] => None,
                    ["from", f] => Some(net(f)?),
                    _ => return Err(bad()),
                };
                Ok(Rule::Allow { service, from })
            }
            _ => Err(bad()),
        }
    }
}

fn family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// The rule's matches and verdict in nft syntax.
fn nft_expr(r: &Rule) -> String {
    match r {
        Rule::Masquerade { subnet, bridge } => format!(
            "{} saddr {} oifname != \"{bridge}\" masquerade",
            family(subnet),
            subnet.trunc()
        ),
        Rule::HairpinMasquerade { subnet, bridge } => format!(
            "{} saddr {} oifname \"{bridge}\" ct status dnat masquerade",
            family(subnet),
            subnet.trunc()
        ),
        Rule::Publish {
            proto,
            host_port,
            to,
            port,
        } => {
            let l4 = proto_word(*proto);
            let target = match to {
                std::net::IpAddr::V4(a) => format!("ip to {a}:{port}"),
                std::net::IpAddr::V6(a) => format!("ip6 to [{a}]:{port}"),
            };
            format!("fib daddr type local {l4} dport {host_port} dnat {target}")
        }
        Rule::IsolateNetwork { bridge } => {
            format!("iifname \"{bridge}\" oifname != \"{bridge}\" oifname @bridges drop")
        }
        Rule::Allow { service, from } => {
            let mut e = String::new();
            if let Some(f) = from {
                let _ = write!(e, "{} saddr {} ", family(f), f.trunc());
            }
            match service {
                Service::Icmp => e.push_str("meta l4proto { icmp, ipv6-icmp }"),
                Service::Tcp(p) => {
                    let _ = write!(e, "tcp dport {p}");
                }
                Service::Udp(p) => {
                    let _ = write!(e, "udp dport {p}");
                }
            }
            e.push_str(" accept");
            e
        }
    }
}

impl Table {
    /// The same transaction as [`Table::batch`], as an `nft -f` script: the table added (so a
    /// missing one is no error), deleted and made again with all its contents.
    pub fn nft_script(&self) -> String {
        let t = format!("inet {}", self.name);
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line(format!("add table {t}"));
        line(format!("delete table {t}"));
        line(format!("add table {t}"));
        line(format!("add chain {t} v-{}", self.version()));
        if !self.bridges.is_empty() {
            let elems: Vec<String> = self.bridges.iter().map(|b| format!("\"{b}\"")).collect();
            line(format!(
                "add set {t} bridges {{ type ifname; elements = {{ {} }}; }}",
                elems.join(", ")
            ));
        }
        let chain = |name: &str, kind: &str, prio: i32, policy: &str| {
            format!("add chain {t} {name} {{ type {kind} hook {name} priority {prio}; policy {policy}; }}")
        };
        let rule =
            |chain: &str, r: &Rule| format!("add rule {t} {chain} {} comment \"{r}\"", nft_expr(r));
        if !self.nat.is_empty() {
            line(chain("postrouting", "nat", 100, "accept"));
            for r in &self.nat {
                line(rule("postrouting", r));
            }
        }
        if !self.publish.is_empty() {
            line(chain("prerouting", "nat", -100, "accept"));
            line(chain("output", "nat", -100, "accept"));
            for r in &self.publish {
                line(rule("prerouting", r));
                line(rule("output", r));
            }
        }
        if !self.forward.is_empty() {
            line(chain("forward", "filter", 0, "accept"));
            for r in &self.forward {
                line(rule("forward", r));
            }
        }
        if let Some(accept) = self.input_accept {
            let policy = if accept { "accept" } else { "drop" };
            line(chain("input", "filter", 0, policy));
            line(format!(
                "add rule {t} input ct state established,related accept"
            ));
            line(format!("add rule {t} input iifname \"lo\" accept"));
            line(format!(
                "add rule {t} input icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert }} accept"
            ));
            for r in &self.allow {
                line(rule("input", r));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_description_parses_back_to_the_rule() {
        let rules = [
            Rule::Masquerade {
                subnet: "10.88.0.0/24".parse().unwrap(),
                bridge: "lab1-plumb0".into(),
            },
            Rule::HairpinMasquerade {
                subnet: "fd00:88::/64".parse().unwrap(),
                bridge: "plumb0".into(),
            },
            Rule::Publish {
                proto: Proto::Udp,
                host_port: 5353,
                to: "fd00:88::2".parse().unwrap(),
                port: 53,
            },
            Rule::IsolateNetwork {
                bridge: "br-a".into(),
            },
            Rule::Allow {
                service: Service::Icmp,
                from: None,
            },
            Rule::Allow {
                service: Service::Tcp(80),
                from: Some("10.0.0.0/8".parse().unwrap()),
            },
        ];
        for r in rules {
            let text = r.to_string();
            assert!(
                text.len() <= 127,
                "nftables comments hold 127 bytes: {text}"
            );
            assert_eq!(text.parse::<Rule>(), Ok(r), "{text}");
        }
        assert!("masquerade everything".parse::<Rule>().is_err());
        assert!("allow tcp/0x50".parse::<Rule>().is_err());
        assert!("".parse::<Rule>().is_err());
    }

    #[test]
    fn the_script_has_one_rule_line_per_rule_and_policy_and_comment() {
        let t = Table {
            name: "plumb-x".into(),
            bridges: Vec::new(),
            nat: Vec::new(),
            publish: vec![Rule::Publish {
                proto: Proto::Tcp,
                host_port: 8080,
                to: "10.88.0.2".parse().unwrap(),
                port: 80,
            }],
            forward: Vec::new(),
            input_accept: None,
            allow: Vec::new(),
        };
        let s = t.nft_script();
        assert!(s.starts_with("add table inet plumb-x\ndelete table inet plumb-x\n"));
        assert!(s.contains(
            "add rule inet plumb-x prerouting fib daddr type local tcp dport 8080 dnat ip to 10.88.0.2:80 comment \"publish tcp 8080 to 10.88.0.2 port 80\"\n"
        ), "{s}");
    }
}
