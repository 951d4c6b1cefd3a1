//! How plumb knows what is its own, with no state file: the marks it leaves in the kernel, the
//! per-lab lock, and the crash journal. Used alike by `plan` (to decide what it may change),
//! `apply` (to write the marks), `inspect` (to attribute objects to labs) and `gc`.
//!
//! The marks:
//! - **tags**: the alias (`IFLA_IFALIAS`) of every interface plumb creates reads `plumb:LAB`;
//!   veth ends add `link=ID` (an identifier of the pair's definition, which also pairs the ends
//!   for `show`); a namespace is tagged through the alias of its `lo`, which also carries
//!   `fw=VERSION` when the lab keeps a firewall table there;
//! - **the lab's link group** (`IFLA_GROUP`): every interface is born in it (the group, unlike the
//!   alias, is set by the creating request itself), so `down` removes a lab's host interfaces in
//!   one request, and `gc` recognises an interface that a crash left untagged;
//! - **the route protocol** [`RTPROT_PLUMB`] on every route plumb installs;
//! - **the firewall version**: a chain `v-VERSION` in the lab's nftables table.
//!
//! Invariant: plumb never changes or deletes an object that carries no mark of the lab, except
//! an object the lab's journal says this lab was creating when it was interrupted (see
//! [`journal`]).

pub mod journal;
pub mod lock;

use crate::model::names::{IfName, LabName};
use crate::model::{MacAddr, NodeRef};

/// The prefix of every tag plumb writes into an interface alias: `plumb:LAB`.
pub const TAG_PREFIX: &str = "plumb:";

/// `rtm_protocol` of every route plumb installs, so they can be told from the kernel's and
/// other tools' routes (`ip route show proto 250`). Values above RTPROT_STATIC (4) are free
/// for routing daemons (`include/uapi/linux/rtnetlink.h`); 250 is unused by iproute2's rt_protos.
pub const RTPROT_PLUMB: u8 = 250;

/// A parsed tag: the lab, and the optional words after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The lab that owns the object.
    pub lab: &'a str,
    /// For a veth end: the identifier of its pair's definition.
    pub link: Option<&'a str>,
    /// For a namespace's `lo`: the version of the lab's firewall table in that namespace.
    pub fw: Option<&'a str>,
    /// On a namespace's `lo` in a lab with a `prefix`: the node's name as the file writes it
    /// (`plumb exec LAB:NODE` finds the namespace by it).
    pub node: Option<&'a str>,
}

impl<'a> Tag<'a> {
    /// Reads an alias; `None` unless it is a plumb tag.
    pub fn parse(alias: &'a str) -> Option<Tag<'a>> {
        let rest = alias.strip_prefix(TAG_PREFIX)?;
        let mut words = rest.split(' ');
        let lab = words.next().filter(|l| !l.is_empty())?;
        let mut tag = Tag {
            lab,
            link: None,
            fw: None,
            node: None,
        };
        for w in words {
            if let Some(id) = w.strip_prefix("link=") {
                tag.link = Some(id);
            } else if let Some(v) = w.strip_prefix("fw=") {
                tag.fw = Some(v);
            } else if let Some(v) = w.strip_prefix("node=") {
                tag.node = Some(v);
            }
        }
        Some(tag)
    }
}

/// The lab an alias names, if the alias is a plumb tag.
pub fn owner(alias: Option<&str>) -> Option<&str> {
    alias.and_then(Tag::parse).map(|t| t.lab)
}

/// The tag of a lab's bridges, and of `lo` in its namespaces: `plumb:LAB`.
pub fn lab_tag(lab: &LabName) -> String {
    format!("{TAG_PREFIX}{lab}")
}

/// The tag of one end of a veth pair: `plumb:LAB link=ID`.
pub fn veth_tag(lab: &LabName, link_id: &str) -> String {
    format!("{TAG_PREFIX}{lab} link={link_id}")
}

/// The tag of `lo` in a namespace of the lab: with the node's name as written when the lab has a
/// `prefix`, and the version of the lab's firewall table there.
pub fn lo_tag(lab: &LabName, node: Option<&str>, fw: Option<&str>) -> String {
    let mut tag = lab_tag(lab);
    if let Some(n) = node {
        tag.push_str(" node=");
        tag.push_str(n);
    }
    if let Some(v) = fw {
        tag.push_str(" fw=");
        tag.push_str(v);
    }
    tag
}

/// The stable hash identifiers are derived from ([`crate::model::names::stable_hash`], the one
/// hash function of plumb) of a string.
pub fn hash(data: &str) -> u64 {
    crate::model::names::stable_hash(data.as_bytes())
}

/// The link group of a lab's interfaces: 32 bits of the hash of its name, never below 0x10000
/// (groups 0..0xffff are left to people: 0 is every interface's default). Two labs may still
/// share a group; the group lock ([`lock`]) serialises them and teardown deletes by group only
/// when every member of the group carries the lab's tag.
pub fn lab_group(lab: &LabName) -> u32 {
    let g = hash(lab.as_str()) as u32;
    if g < 0x1_0000 {
        g | 0x1_0000
    } else {
        g
    }
}

/// The identifier of a veth pair's definition: its two ends, in a canonical order. A pair whose
/// ends change is a different pair (rebuilt); MTU, MAC and bridge changes are made in place.
pub fn link_id(a: (&NodeRef, &IfName), b: (&NodeRef, &IfName)) -> String {
    let ea = format!("{}:{}", a.0, a.1);
    let eb = format!("{}:{}", b.0, b.1);
    let (x, y) = if ea <= eb { (ea, eb) } else { (eb, ea) };
    format!("{:012x}", hash(&format!("{x}<>{y}")) & 0xffff_ffff_ffff)
}

/// A fixed, locally administered MAC for a bridge: the kernel otherwise re-derives the bridge's
/// MAC from its ports whenever one is added.
pub fn bridge_mac(lab: &LabName, node: &NodeRef, name: &IfName) -> MacAddr {
    let h = hash(&format!("{lab}/{node}/{name}")).to_be_bytes();
    MacAddr([0x02, h[0], h[1], h[2], h[3], h[4]])
}

/// The temporary name an interface of the lab gets while a converge replaces it (a pair whose
/// ends changed keeps its name for the new pair): `plp` and 12 hex digits. Renamed back if the
/// run fails; deleted once the run has succeeded.
pub fn parked_name(node: &NodeRef, name: &str) -> IfName {
    let h = hash(&format!("park/{node}/{name}")) & 0xffff_ffff_ffff;
    IfName::new(&format!("plp{h:012x}")).unwrap_or_else(|_| unreachable_name())
}

/// Is `name` a name given by [`parked_name`]?
pub fn is_parked_name(name: &str) -> bool {
    name.len() == 15 && name.starts_with("plp") && name[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cold]
fn unreachable_name() -> IfName {
    // "plp" + 12 hex digits is 15 bytes of [a-z0-9]: always a valid interface name.
    IfName::new("plp000000000000").unwrap_or_else(|_| unreachable!("a constant valid name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(s: &str) -> LabName {
        LabName::new(s).unwrap()
    }

    #[test]
    fn tag_parse_reads_lab_link_and_fw() {
        assert_eq!(
            Tag::parse("plumb:seed link=00ab fw=1234"),
            Some(Tag {
                lab: "seed",
                link: Some("00ab"),
                fw: Some("1234"),
                node: None,
            })
        );
        assert_eq!(Tag::parse("plumb:"), None);
        assert_eq!(Tag::parse("docker0"), None);
        assert_eq!(owner(Some("plumb:star")), Some("star"));
        assert_eq!(owner(None), None);
    }

    #[test]
    fn tags_round_trip_through_parse() {
        let l = lab("seed");
        assert_eq!(Tag::parse(&lab_tag(&l)).unwrap().lab, "seed");
        let v = veth_tag(&l, "abc");
        assert_eq!(Tag::parse(&v).unwrap().link, Some("abc"));
        let lo = lo_tag(&l, None, Some("77"));
        assert_eq!(Tag::parse(&lo).unwrap().fw, Some("77"));
        assert_eq!(lo_tag(&l, None, None), "plumb:seed");
        let lo = lo_tag(&l, Some("web"), Some("77"));
        assert_eq!(lo, "plumb:seed node=web fw=77");
        let t = Tag::parse(&lo).unwrap();
        assert_eq!((t.node, t.fw), (Some("web"), Some("77")));
    }

    #[test]
    fn lab_group_uses_32_bits_and_avoids_small_groups() {
        let groups: std::collections::HashSet<u32> = (0..2000)
            .map(|i| lab_group(&lab(&format!("lab{i}"))))
            .collect();
        assert_eq!(
            groups.len(),
            2000,
            "2000 labs should not collide in 32 bits"
        );
        assert!(groups.iter().all(|g| *g >= 0x1_0000));
        assert!(groups.iter().any(|g| *g > 0xffff_0000 >> 1));
    }

    #[test]
    fn link_id_ignores_the_order_of_the_ends() {
        let a = NodeRef::Host;
        let b = NodeRef::Ns(crate::model::names::NsName::new("ns1").unwrap());
        let x = IfName::new("veth1").unwrap();
        let y = IfName::new("eth0").unwrap();
        assert_eq!(link_id((&a, &x), (&b, &y)), link_id((&b, &y), (&a, &x)));
        assert_ne!(link_id((&a, &x), (&b, &y)), link_id((&a, &y), (&b, &x)));
    }

    #[test]
    fn parked_names_are_valid_and_recognised() {
        let n = parked_name(&NodeRef::Host, "veth1");
        assert_eq!(n.as_str().len(), 15);
        assert!(is_parked_name(n.as_str()));
        assert!(!is_parked_name("veth1"));
        assert_ne!(n, parked_name(&NodeRef::Host, "veth2"));
    }
}
