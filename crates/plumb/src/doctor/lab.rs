//! A lab against its file: the diff `plumb up` would apply ([`crate::plan::diff`] after
//! [`crate::plan::settle`], on a snapshot that read the sysctls the file sets). Every pending
//! step is something the file declares that the kernel does not have; the steps that name a
//! known symptom (an interface down, a default route missing, forwarding off) become their own
//! findings, the rest one "incomplete" finding.

use super::{Finding, Severity};
use crate::inspect::{NsState, Snapshot};
use crate::model::{NodeRef, Topology};
use crate::plan::{self, Step};

/// How many pending steps a finding lists.
const LISTED: usize = 12;

/// What the snapshot has of `node`, if it exists.
fn seen<'a>(snap: &'a Snapshot, node: &NodeRef) -> Option<&'a NsState> {
    match node {
        NodeRef::Host => Some(&snap.host),
        NodeRef::Ns(n) => snap.namespaces.get(n).and_then(|ns| ns.state.as_ref().ok()),
    }
}

/// Findings of lab `topo` against `snap` (read as `plumb up` reads it: with the sysctls the
/// file sets, see [`crate::lab::snapshot_for`]).
pub fn lab_findings(topo: &Topology, snap: &Snapshot) -> Vec<Finding> {
    let lab = topo.name.as_str();
    let topo = plan::settle(topo, snap);
    let p = plan::diff(&topo, snap);
    let mut out = Vec::new();
    for c in &p.conflicts {
        out.push(
            Finding::new("lab-conflict", Severity::Error, c.object.clone())
                .lab(Some(lab))
                .summary(format!("{c}"))
                .with("node", c.node.to_string())
                .with("owner", c.owner.clone().unwrap_or_else(|| "not plumb".into()))
                .why("plumb never changes an object it does not own: `plumb up` stops before touching anything")
                .fix("remove or rename the object, or rename it in the lab's file"),
        );
    }
    let mut rest: Vec<&Step> = Vec::new();
    for s in &p.steps {
        match s {
            // Symptoms of objects that exist; what is missing altogether is "incomplete".
            Step::SetLink { node, name, set, .. }
                if set.up == Some(true)
                    && seen(snap, node).and_then(|st| st.link(name)).is_some_and(|l| !l.up) =>
            {
                out.push(
                Finding::new("interface-down", Severity::Error, format!("{node}/{name}"))
                    .lab(Some(lab))
                    .summary(format!("{name} in {node} is down, and lab {lab} declares it up"))
                    .with("interface", name.as_str())
                    .with("admin_state", "down")
                    .why("a down interface carries nothing, and the kernel drops every route through it")
                    .fix(format!("`plumb up` the lab's file again ({s})")),
                )
            }
            Step::AddRoute { node, route, .. }
                if route.dst.prefix_len() == 0 && seen(snap, node).is_some() =>
            {
                out.push(
                Finding::new("no-default-route", Severity::Error, node.to_string())
                    .lab(Some(lab))
                    .summary(format!("{node} has no default route, and lab {lab} expects egress through {}", route.via.map_or("its gateway".to_string(), |v| v.to_string())))
                    .with("expected", route.to_string())
                    .why("without a default route a node reaches only its own subnets: its egress (NAT, the internet, other networks) fails with \"Network is unreachable\"")
                    .fix(format!("`plumb up` the lab's file again ({s})")),
                )
            }
            Step::Sysctl { node, key, value, prev }
                if (key.ends_with("forwarding") || key.ends_with("ip_forward"))
                    && seen(snap, node).is_some() =>
            {
                out.push(
                Finding::new("forwarding-off", Severity::Error, node.to_string())
                    .lab(Some(lab))
                    .summary(format!("{key} is {} in {node}, and lab {lab} needs {value}", prev.as_deref().unwrap_or("unset")))
                    .with("sysctl", key.as_str())
                    .with("value", prev.clone().unwrap_or_default())
                    .with("wanted", value.as_str())
                    .why("without forwarding the node drops every packet that is not for itself: the lab's routed or NAT'd traffic stops there")
                    .fix(format!("`plumb up` the lab's file again ({s})")),
                )
            }
            other => rest.push(other),
        }
    }
    if !rest.is_empty() {
        let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
        for s in &rest {
            *kinds.entry(s.kind()).or_default() += 1;
        }
        let mut f = Finding::new("lab-incomplete", Severity::Error, lab)
            .lab(Some(lab))
            .summary(format!(
                "lab {lab} differs from its file: `plumb up` would apply {} step(s)",
                rest.len()
            ))
            .with("pending_steps", rest.len());
        for (k, n) in &kinds {
            f = f.with(&format!("pending {k}"), *n);
        }
        let listed: Vec<String> = rest.iter().take(LISTED).map(|s| s.to_string()).collect();
        f = f.with("first_steps", listed.join("\n"));
        out.push(
            f.why("a half-built lab (an interrupted `up`, objects deleted or changed by hand) behaves like neither the file nor what `show` suggests")
                .fix("`plumb up` the lab's file (it converges: creates what is missing, changes what differs); `plumb gc` first if `plumb ls` marks it interrupted"),
        );
    }
    super::sort(&mut out);
    out
}
