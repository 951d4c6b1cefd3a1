//! The crash journal: what a change of a lab was about to create, written before it creates it.
//!
//! Tags cover an object from the moment it is tagged; the journal covers the instant before.
//! A run appends, in one `write` per batch and before the batch runs, a record of every object
//! the batch creates or renames. When the run ends — successfully, or failed with everything
//! restored — the journal is removed. If it stays behind (the process was killed, or a rollback
//! could not undo everything), the lab's change was interrupted: `plumb gc` reads the journal and
//! removes what the run made and nothing else.
//!
//! Format (`/run/plumb/LAB.journal`, one record per line, names never contain spaces):
//!
//! ```text
//! plumb-journal 1 up pid=4242
//! ns web                          a namespace about to be created
//! link host veth1                 an interface about to be created in a node
//! park host plp0123456789ab veth1 up
//!                                 an interface taken down and renamed out of the way (`-` when
//!                                 only taken down), and whether it was up
//! fw host                         a firewall table about to be created where there was none
//! ```
//!
//! A line that was torn by a kill in the middle of a write is ignored: the objects it would
//! have named were not created yet.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use super::lock::{LabLock, STATE_DIR};
use crate::model::names::{IfName, LabName, NsName};
use crate::model::NodeRef;

const MAGIC: &str = "plumb-journal 1";

/// What the interrupted change was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `up` (a build or a converge): undone by removing what it created.
    Up,
    /// `down`: finished by `gc`.
    Down,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A namespace about to be created.
    Ns(NsName),
    /// An interface about to be created.
    Link {
        /// Where.
        node: NodeRef,
        /// Its name.
        name: IfName,
    },
    /// An interface taken down (and renamed out of the way of a new one with its name).
    Park {
        /// Where.
        node: NodeRef,
        /// Its temporary name, if it was renamed.
        parked: Option<IfName>,
        /// Its name before.
        name: IfName,
        /// Whether it was up.
        up: bool,
    },
    /// A firewall table about to be created in a node that had none.
    Firewall {
        /// Where.
        node: NodeRef,
    },
}

fn node_word(n: &NodeRef) -> String {
    n.to_string()
}

fn parse_node(w: &str) -> Option<NodeRef> {
    if w == "host" {
        Some(NodeRef::Host)
    } else {
        NsName::new(w).ok().map(NodeRef::Ns)
    }
}

impl Record {
    fn line(&self) -> String {
        match self {
            Record::Ns(n) => format!("ns {n}\n"),
            Record::Link { node, name } => format!("link {} {name}\n", node_word(node)),
            Record::Park {
                node,
                parked,
                name,
                up,
            } => format!(
                "park {} {} {name} {}\n",
                node_word(node),
                parked.as_ref().map_or("-", |p| p.as_str()),
                if *up { "up" } else { "down" }
            ),
            Record::Firewall { node } => format!("fw {}\n", node_word(node)),
        }
    }

    fn parse(line: &str) -> Option<Record> {
        let w: Vec<&str> = line.split(' ').collect();
        match w.as_slice() {
            ["ns", n] => NsName::new(n).ok().map(Record::Ns),
            ["link", node, name] => Some(Record::Link {
                node: parse_node(node)?,
                name: IfName::new(name).ok()?,
            }),
            ["park", node, parked, name, up] => Some(Record::Park {
                node: parse_node(node)?,
                parked: match *parked {
                    "-" => None,
                    p => Some(IfName::new(p).ok()?),
                },
                name: IfName::new(name).ok()?,
                up: match *up {
                    "up" => true,
                    "down" => false,
                    _ => return None,
                },
            }),
            ["fw", node] => Some(Record::Firewall {
                node: parse_node(node)?,
            }),
            _ => None,
        }
    }
}

/// A journal read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What the change was.
    pub op: Op,
    /// The process that wrote it.
    pub pid: u32,
    /// The records, in order.
    pub records: Vec<Record>,
}

/// The journal file of `lab`.
pub fn path(lab: &LabName) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{lab}.journal"))
}

/// An open journal of a change in progress. Dropping it leaves the file in place (the change
/// did not complete); [`Journal::finish`] removes it.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Starts the journal of a change of the locked lab, replacing any earlier one (the caller
    /// has dealt with it: `gc` reads an old journal before a new change may start).
    pub fn begin(lock: &LabLock, op: Op) -> io::Result<Journal> {
        let path = path(lock.lab());
        fs::create_dir_all(STATE_DIR)?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let op = match op {
            Op::Up => "up",
            Op::Down => "down",
        };
        file.write_all(format!("{MAGIC} {op} pid={}\n", std::process::id()).as_bytes())?;
        Ok(Journal { file, path })
    }

    /// Appends records in one write, before the objects they name are created.
    pub fn record(&mut self, records: &[Record]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let text: String = records.iter().map(Record::line).collect();
        self.file.write_all(text.as_bytes())
    }

    /// The change completed (or was fully undone): removes the journal.
    pub fn finish(self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Parses a journal's text. `None` if it is not a journal.
pub fn parse(text: &str) -> Option<Entry> {
    let mut lines = text.split_inclusive('\n');
    let head = lines.next()?.strip_suffix('\n')?;
    let rest = head.strip_prefix(MAGIC)?.trim_start();
    let mut words = rest.split(' ');
    let op = match words.next()? {
        "up" => Op::Up,
        "down" => Op::Down,
        _ => return None,
    };
    let pid = words
        .next()
        .and_then(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let records = lines
        // A line without its newline was torn by a kill mid-write: ignore it.
        .filter_map(|l| l.strip_suffix('\n'))
        .filter_map(Record::parse)
        .collect();
    Some(Entry { op, pid, records })
}

/// Reads `lab`'s journal: `Ok(None)` when there is none (no change of the lab was interrupted).
pub fn read(lab: &LabName) -> io::Result<Option<Entry>> {
    match fs::read_to_string(path(lab)) {
        Ok(text) => Ok(Some(parse(&text).unwrap_or(Entry {
            // Unreadable content still means "interrupted"; gc then tears the lab down.
            op: Op::Down,
            pid: 0,
            records: Vec::new(),
        }))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `lab`'s journal (after `gc` dealt with it).
pub fn remove(lab: &LabName) -> io::Result<()> {
    match fs::remove_file(path(lab)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The labs that have a journal, i.e. whose last change did not complete.
pub fn labs() -> io::Result<Vec<LabName>> {
    let rd = match fs::read_dir(STATE_DIR) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        let name = e.file_name();
        let Some(lab) = name.to_str().and_then(|n| n.strip_suffix(".journal")) else {
            continue;
        };
        if let Ok(l) = LabName::new(lab) {
            out.push(l);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_text_round_trips_and_ignores_a_torn_line() {
        let recs = vec![
            Record::Ns(NsName::new("web").unwrap()),
            Record::Link {
                node: NodeRef::Host,
                name: IfName::new("veth1").unwrap(),
            },
            Record::Park {
                node: NodeRef::Ns(NsName::new("ns1").unwrap()),
                parked: Some(IfName::new("plp0123456789ab").unwrap()),
                name: IfName::new("eth0").unwrap(),
                up: true,
            },
            Record::Park {
                node: NodeRef::Host,
                parked: None,
                name: IfName::new("veth9").unwrap(),
                up: false,
            },
            Record::Firewall {
                node: NodeRef::Host,
            },
        ];
        let mut text = format!("{MAGIC} up pid=42\n");
        for r in &recs {
            text.push_str(&r.line());
        }
        text.push_str("link host vet"); // torn
        let e = parse(&text).unwrap();
        assert_eq!(e.op, Op::Up);
        assert_eq!(e.pid, 42);
        assert_eq!(e.records, recs);
    }

    #[test]
    fn journal_parse_refuses_foreign_text() {
        assert_eq!(parse("hello\n"), None);
        assert_eq!(parse(""), None);
        assert_eq!(
            parse(&format!("{MAGIC} down pid=1\n")).unwrap().op,
            Op::Down
        );
    }
}
