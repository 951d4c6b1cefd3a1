//! `plumb exec NODE CMD…`.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::Context;
use plumb::model::names::{LabName, NsName};
use plumb::netns::{self, NetnsError, NsRef, Registry};

use crate::Outcome;

/// `NSFS_MAGIC` from `<linux/magic.h>`: the filesystem of namespace files.
const NSFS_MAGIC: i128 = 0x6e73_6673;

/// How many nodes a hint lists before it says how many there are in all.
const HINT_MAX: usize = 8;

/// Run a command inside a node, as `ip netns exec NODE CMD` does (private mounts, a /sys of the
/// node, /etc/netns/NODE/* over /etc).
#[derive(clap::Args)]
pub struct Args {
    /// The node: a name in /run/netns, LAB:NODE (a node of a lab as its file names it), an
    /// absolute path to an nsfs file, pid:PID, host, a container (docker:ID, podman:ID,
    /// container:ID…) or net:[INODE] (see `plumb ns ls`).
    node: String,
    /// The command and its arguments; everything after NODE belongs to it (`--` before it is
    /// optional).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    cmd: Vec<String>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let reg = Registry::default();
    let r = ns_ref(&reg, &a.node)?;
    check_is_namespace(&reg, &r, &a.node)?;
    netns::enter_for_exec(&reg, &r).map_err(|e| match e {
        // The file is an nsfs file (checked above): setns refuses a namespace of another kind.
        NetnsError::Enter { source, .. }
            if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
        {
            anyhow::Error::new(source).context(format!(
                "`{}` is a namespace, but not a network namespace",
                a.node
            ))
        }
        e => anyhow::Error::new(e),
    })?;
    let err = std::process::Command::new(&a.cmd[0])
        .args(&a.cmd[1..])
        .exec();
    Err(anyhow::Error::new(err).context(format!("cannot run {}", a.cmd[0])))
}

/// What a NODE argument refers to: the one place that turns such a string into an [`NsRef`].
///
/// `host`, `pid:PID`, an absolute path and a name are read by [`NsRef::parse`]. A name that is
/// not in /run/netns but reads `LAB:NODE` is the node of that lab (the namespace of a lab with a
/// `prefix` is not named as its node is): a namespace literally named `LAB:NODE` wins. A name
/// that is neither is an error whose hint lists the labs' nodes of that name (or those present).
pub fn ns_ref(reg: &Registry, arg: &str) -> anyhow::Result<NsRef> {
    // A container or an inode: found among every namespace on the machine.
    if plumb::inspect::discover::is_machine_reference(arg) {
        let d = plumb::inspect::discover::discover(&plumb::inspect::discover::Roots::default());
        return match d.find(arg).as_slice() {
            [one] => Ok(NsRef::Path(one.open_path.clone())),
            [] => anyhow::bail!("no network namespace `{arg}` on this machine (see `plumb ns ls`)"),
            many => anyhow::bail!(
                "`{arg}` names {} namespaces: {}",
                many.len(),
                many.iter()
                    .map(|f| f.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    }
    let parsed = NsRef::parse(arg).with_context(|| {
        format!("`{arg}` is not a node (a name, LAB:NODE, an absolute path, pid:PID or host)")
    })?;
    let NsRef::Name(name) = parsed else {
        return Ok(parsed);
    };
    let path = reg.path(&name);
    let missing = match std::fs::symlink_metadata(&path) {
        Ok(_) => return Ok(NsRef::Name(name)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => e,
        // Something is there that plumb may not look at: opening it will say what.
        Err(_) => return Ok(NsRef::Name(name)),
    };
    if let Some((lab, node)) = arg.split_once(':') {
        if lab == "pid" {
            anyhow::bail!("`{arg}`: `{node}` is not a process id");
        }
        let lab = LabName::new(lab).with_context(|| {
            format!("there is no namespace `{arg}`, and `{lab}` is not a lab name")
        })?;
        let ns = plumb::lab::resolve_node(&lab, node)?;
        return Ok(NsRef::Name(ns));
    }
    Err(NoNamespace {
        hint: hint(reg, &name),
        name,
        path,
        source: missing,
    }
    .into())
}

/// A NODE that names no namespace.
#[derive(Debug, thiserror::Error)]
#[error("there is no network namespace `{name}` ({}: {source}){hint}", path.display())]
struct NoNamespace {
    name: NsName,
    path: PathBuf,
    #[source]
    source: io::Error,
    hint: String,
}

/// The labs' nodes named `name` as `LAB:NODE`; else every lab's nodes; else the namespaces in
/// /run/netns. Empty if none can be read.
fn hint(reg: &Registry, name: &NsName) -> String {
    let list = |items: Vec<String>| {
        let n = items.len();
        let mut s = items
            .into_iter()
            .take(HINT_MAX)
            .collect::<Vec<_>>()
            .join(", ");
        if n > HINT_MAX {
            s.push_str(&format!(", … ({n} in all)"));
        }
        s
    };
    let nodes = plumb::lab::nodes(None).unwrap_or_default();
    let matching: Vec<String> = nodes
        .iter()
        .filter(|n| n.node == name.as_str())
        .map(|n| format!("{}:{}", n.lab, n.node))
        .collect();
    if let Some(first) = matching.first() {
        return format!(
            "; labs have a node `{name}`: {} (for example `plumb exec {first} …`)",
            list(matching.clone())
        );
    }
    if !nodes.is_empty() {
        let all = nodes
            .iter()
            .map(|n| format!("{}:{}", n.lab, n.node))
            .collect();
        return format!("; the labs' nodes here: {}", list(all));
    }
    match reg.list() {
        Ok(names) if !names.is_empty() => format!(
            "; the namespaces here: {}",
            list(names.iter().map(ToString::to_string).collect())
        ),
        Ok(_) => "; there is no namespace in /run/netns (`plumb ls` lists the labs)".into(),
        Err(_) => String::new(),
    }
}

/// Fails with a sentence unless `r` opens as a namespace file: it may be missing, or be a
/// plain file (a path that was never a namespace, a stale entry of /run/netns).
fn check_is_namespace(reg: &Registry, r: &NsRef, arg: &str) -> anyhow::Result<()> {
    if matches!(r, NsRef::Current) {
        return Ok(());
    }
    let path = r.path(reg);
    let what = if path.as_os_str() == arg {
        format!("`{arg}`")
    } else {
        format!("`{arg}` ({})", path.display())
    };
    let file = std::fs::File::open(&path).map_err(|e| {
        let sentence = match e.kind() {
            io::ErrorKind::NotFound => format!("{what} does not exist"),
            _ => format!("cannot open {what}"),
        };
        anyhow::Error::new(e).context(sentence)
    })?;
    let fs = rustix::fs::fstatfs(&file)
        .map_err(io::Error::from)
        .with_context(|| format!("cannot tell what {what} is"))?;
    // `f_type`'s integer type differs between architectures.
    if i128::from(fs.f_type) != NSFS_MAGIC {
        anyhow::bail!(
            "{what} is not a network namespace: it is not a namespace file (one is /run/netns/NAME, /proc/PID/ns/net, or a bind mount of one)"
        );
    }
    Ok(())
}
