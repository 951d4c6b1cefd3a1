//! One node's observed state with its lookups made once: by interface name, by index, and
//! addresses by interface. A host with thousands of bridge ports is asked about each of them,
//! so a linear search per question would make planning quadratic.

use std::collections::HashMap;

use ipnet::IpNet;

use crate::inspect::{LinkState, NsState};

pub(crate) struct Seen<'a> {
    pub st: &'a NsState,
    by_name: HashMap<&'a str, &'a LinkState>,
    by_index: HashMap<u32, &'a LinkState>,
    addrs: HashMap<u32, Vec<IpNet>>,
}

impl<'a> Seen<'a> {
    pub fn new(st: &'a NsState) -> Self {
        let mut addrs: HashMap<u32, Vec<IpNet>> = HashMap::new();
        for a in &st.addrs {
            addrs.entry(a.index).or_default().push(a.addr);
        }
        Seen {
            st,
            by_name: st.links.iter().map(|l| (l.name.as_str(), l)).collect(),
            by_index: st.links.iter().map(|l| (l.index, l)).collect(),
            addrs,
        }
    }

    /// The interface called `name`.
    pub fn link(&self, name: &str) -> Option<&'a LinkState> {
        self.by_name.get(name).copied()
    }

    /// The interface with index `index`.
    pub fn link_by_index(&self, index: u32) -> Option<&'a LinkState> {
        self.by_index.get(&index).copied()
    }

    /// Addresses on interface `index`.
    pub fn addrs_of(&self, index: u32) -> &[IpNet] {
        self.addrs.get(&index).map_or(&[], Vec::as_slice)
    }
}
