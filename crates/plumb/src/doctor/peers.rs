//! Veth pairs across the snapshot's namespaces, found without entering any namespace: by
//! plumb's pair tag (`link=ID`) where both ends carry it, otherwise by each end's `IFLA_LINK`
//! (the peer's index) matching the other's index both ways.

use std::collections::BTreeMap;

use crate::inspect::{LinkKind, LinkState, NsState, Snapshot};

/// One interface of the snapshot: its place (`host` or a namespace) and the link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct End<'a> {
    /// `host` or the namespace's name.
    pub place: &'a str,
    /// The namespace's name, `None` for the host.
    pub ns: Option<&'a str>,
    pub link: &'a LinkState,
    /// Everything in that place.
    pub state: &'a NsState,
}

impl End<'_> {
    /// `PLACE/IFNAME`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.place, self.link.name)
    }
}

/// Every veth end, and the pairs found.
#[derive(Debug, Default)]
pub(crate) struct Pairs<'a> {
    /// Every veth end in the snapshot.
    pub ends: Vec<End<'a>>,
    /// For each end (by position in `ends`), the position of its peer, when found.
    pub peer: Vec<Option<usize>>,
}

impl<'a> Pairs<'a> {
    /// The peer of the veth `name` in `place`.
    pub fn peer_of(&self, place: &str, name: &str) -> Option<&End<'a>> {
        let i = self
            .ends
            .iter()
            .position(|e| e.place == place && e.link.name == name)?;
        self.peer[i].map(|j| &self.ends[j])
    }
}

/// Pairs the snapshot's veth ends.
pub(crate) fn pairs(snap: &Snapshot) -> Pairs<'_> {
    let mut ends = Vec::new();
    let host = snap.host.links.iter().map(|l| End {
        place: "host",
        ns: None,
        link: l,
        state: &snap.host,
    });
    ends.extend(host);
    for (name, ns) in &snap.namespaces {
        if let Ok(st) = &ns.state {
            ends.extend(st.links.iter().map(|l| End {
                place: name.as_str(),
                ns: Some(name.as_str()),
                link: l,
                state: st,
            }));
        }
    }
    ends.retain(|e| e.link.kind == LinkKind::Veth);
    let mut peer = vec![None; ends.len()];
    // By tag: (lab, link id) -> ends.
    let mut by_tag: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, e) in ends.iter().enumerate() {
        if let Some(t) = e.link.tag() {
            if let Some(id) = t.link {
                by_tag
                    .entry((t.lab.to_string(), id.to_string()))
                    .or_default()
                    .push(i);
            }
        }
    }
    for v in by_tag.values() {
        if let [a, b] = v[..] {
            peer[a] = Some(b);
            peer[b] = Some(a);
        }
    }
    // By index, both ways, for the rest: an end in the same namespace when the kernel reports
    // no peer namespace, one in another namespace otherwise.
    let mut by_index: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, e) in ends.iter().enumerate() {
        by_index.entry(e.link.index).or_default().push(i);
    }
    for i in 0..ends.len() {
        if peer[i].is_some() {
            continue;
        }
        let e = ends[i];
        let Some(pi) = e.link.peer_index else {
            continue;
        };
        let cands: Vec<usize> = by_index
            .get(&pi)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&j| {
                j != i
                    && peer[j].is_none()
                    && ends[j].link.peer_index == Some(e.link.index)
                    && (ends[j].place == e.place) == e.link.peer_netnsid.is_none()
            })
            .collect();
        if let [j] = cands[..] {
            peer[i] = Some(j);
            peer[j] = Some(i);
        }
    }
    Pairs { ends, peer }
}
