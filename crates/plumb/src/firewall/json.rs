//! A [`Table`] as the nftables JSON batch that `nft -j -f -` applies: one transaction that
//! replaces plumb's table and nothing else. Every rule carries its typed description as its
//! comment, which is how `show` reads the rules back.

use ipnet::IpNet;
use serde_json::{json, Value};

use super::{Rule, Table};
use crate::model::{Proto, Service};

impl Table {
    /// The batch that replaces the table atomically, as nftables JSON.
    pub fn batch(&self) -> Value {
        let t = &self.name;
        let mut cmds = vec![
            json!({"add": {"table": {"family": "inet", "name": t}}}),
            json!({"delete": {"table": {"family": "inet", "name": t}}}),
            json!({"add": {"table": {"family": "inet", "name": t}}}),
            json!({"add": {"chain": {"family": "inet", "table": t, "name": format!("v-{}", self.version())}}}),
        ];
        let chain = |name: &str, kind: &str, hook: &str, prio: i32, policy: &str| json!({"add": {"chain": {"family": "inet", "table": t, "name": name, "type": kind, "hook": hook, "prio": prio, "policy": policy}}});
        let fixed = |chain: &str, expr: Vec<Value>| json!({"add": {"rule": {"family": "inet", "table": t, "chain": chain, "expr": expr}}});
        // A rule of the lab's own carries its description, which `show` reads back.
        let rule = |chain: &str, r: &Rule| json!({"add": {"rule": {"family": "inet", "table": t, "chain": chain, "expr": render(r), "comment": r.to_string()}}});
        if !self.bridges.is_empty() {
            cmds.push(json!({"add": {"set": {"family": "inet", "table": t, "name": "bridges", "type": "ifname", "elem": self.bridges}}}));
        }
        if !self.nat.is_empty() {
            cmds.push(chain("postrouting", "nat", "postrouting", 100, "accept"));
            for r in &self.nat {
                cmds.push(rule("postrouting", r));
            }
        }
        if !self.publish.is_empty() {
            cmds.push(chain("prerouting", "nat", "prerouting", -100, "accept"));
            cmds.push(chain("output", "nat", "output", -100, "accept"));
            for r in &self.publish {
                cmds.push(rule("prerouting", r));
                cmds.push(rule("output", r));
            }
        }
        if !self.forward.is_empty() {
            cmds.push(chain("forward", "filter", "forward", 0, "accept"));
            for r in &self.forward {
                cmds.push(rule("forward", r));
            }
        }
        if let Some(accept) = self.input_accept {
            cmds.push(chain(
                "input",
                "filter",
                "input",
                0,
                if accept { "accept" } else { "drop" },
            ));
            cmds.push(fixed(
                "input",
                vec![
                    m(
                        json!({"ct": {"key": "state"}}),
                        json!(["established", "related"]),
                        "in",
                    ),
                    json!({"accept": null}),
                ],
            ));
            cmds.push(fixed(
                "input",
                vec![
                    m(json!({"meta": {"key": "iifname"}}), json!("lo"), "=="),
                    json!({"accept": null}),
                ],
            ));
            // IPv6 neighbour discovery is what ARP is to IPv4: never blocked.
            cmds.push(fixed("input", vec![
                m(json!({"payload": {"protocol": "icmpv6", "field": "type"}}), json!({"set": ["nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert"]}), "=="),
                json!({"accept": null}),
            ]));
            for r in &self.allow {
                cmds.push(rule("input", r));
            }
        }
        json!({"nftables": cmds})
    }

    /// The batch that removes the table: `add` then `delete`, so a missing table is no error.
    pub fn delete_batch(name: &str) -> Value {
        json!({"nftables": [
            {"add": {"table": {"family": "inet", "name": name}}},
            {"delete": {"table": {"family": "inet", "name": name}}},
        ]})
    }
}

fn m(left: Value, right: Value, op: &str) -> Value {
    json!({"match": {"left": left, "right": right, "op": op}})
}

fn prefix(net: &IpNet) -> (Value, &'static str) {
    let p = json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}});
    (
        p,
        if matches!(net, IpNet::V4(_)) {
            "ip"
        } else {
            "ip6"
        },
    )
}

fn render(r: &Rule) -> Vec<Value> {
    let iif = |b: &str, op: &str| m(json!({"meta": {"key": "iifname"}}), json!(b), op);
    let oif = |b: &str, op: &str| m(json!({"meta": {"key": "oifname"}}), json!(b), op);
    match r {
        Rule::Masquerade { subnet, bridge } => {
            let (p, fam) = prefix(subnet);
            vec![
                m(
                    json!({"payload": {"protocol": fam, "field": "saddr"}}),
                    p,
                    "==",
                ),
                oif(bridge, "!="),
                json!({"masquerade": null}),
            ]
        }
        Rule::HairpinMasquerade { subnet, bridge } => {
            let (p, fam) = prefix(subnet);
            vec![
                m(
                    json!({"payload": {"protocol": fam, "field": "saddr"}}),
                    p,
                    "==",
                ),
                oif(bridge, "=="),
                m(json!({"ct": {"key": "status"}}), json!("dnat"), "in"),
                json!({"masquerade": null}),
            ]
        }
        Rule::Publish {
            proto,
            host_port,
            to,
            port,
        } => {
            let l4 = match proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            let fam = if to.is_ipv4() { "ip" } else { "ip6" };
            vec![
                m(
                    json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                    json!("local"),
                    "==",
                ),
                m(
                    json!({"payload": {"protocol": l4, "field": "dport"}}),
                    json!(host_port),
                    "==",
                ),
                json!({"dnat": {"family": fam, "addr": to.to_string(), "port": port}}),
            ]
        }
        Rule::IsolateNetwork { bridge } => vec![
            iif(bridge, "=="),
            oif(bridge, "!="),
            m(json!({"meta": {"key": "oifname"}}), json!("@bridges"), "=="),
            json!({"drop": null}),
        ],
        Rule::Allow { service, from } => {
            let mut e = Vec::new();
            if let Some(f) = from {
                let (p, fam) = prefix(f);
                e.push(m(
                    json!({"payload": {"protocol": fam, "field": "saddr"}}),
                    p,
                    "==",
                ));
            }
            match service {
                Service::Icmp => e.push(m(
                    json!({"meta": {"key": "l4proto"}}),
                    json!({"set": ["icmp", "ipv6-icmp"]}),
                    "==",
                )),
                Service::Tcp(p) => e.push(m(
                    json!({"payload": {"protocol": "tcp", "field": "dport"}}),
                    json!(p),
                    "==",
                )),
                Service::Udp(p) => e.push(m(
                    json!({"payload": {"protocol": "udp", "field": "dport"}}),
                    json!(p),
                    "==",
                )),
            }
            e.push(json!({"accept": null}));
            e
        }
    }
}
