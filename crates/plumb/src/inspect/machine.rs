//! The machine a lab is for, as loading a file asks about it ([`model::Machine`]): read-only
//! looks at `/proc/sys`, never a change.
//!
//! A node's sysctls are looked up in a fresh network namespace, as the node's will be: a
//! helper thread unshares one (private to the thread, never published in `/run/netns`, gone
//! when the thread ends) and answers from its `/proc/sys/net`, which the kernel resolves by the
//! reading thread's namespace. Keys that exist only in the first namespace (most of
//! `net.core`) are so refused for nodes as the kernel would refuse them. Without the privilege
//! to unshare, the namespace plumb runs in is asked instead.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;

use crate::model::{self, SysctlPlace};

/// The running kernel, asked lazily (no thread unless a node sets a sysctl).
#[derive(Debug, Default)]
pub struct KernelMachine {
    fresh: Mutex<Option<FreshNs>>,
}

#[derive(Debug)]
struct FreshNs {
    ask: mpsc::Sender<(String, mpsc::Sender<bool>)>,
}

fn proc_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

fn exists_here(key: &str) -> bool {
    proc_path(key).is_file()
}

impl FreshNs {
    fn start() -> FreshNs {
        let (ask, questions) = mpsc::channel::<(String, mpsc::Sender<bool>)>();
        std::thread::spawn(move || {
            // Without the privilege, answer from the current namespace.
            let _ = crate::sys::unshare_net();
            for (key, reply) in questions {
                let _ = reply.send(exists_here(&key));
            }
        });
        FreshNs { ask }
    }

    fn has(&self, key: &str) -> Option<bool> {
        let (tx, rx) = mpsc::channel();
        self.ask.send((key.to_owned(), tx)).ok()?;
        rx.recv().ok()
    }
}

impl model::Machine for KernelMachine {
    fn has_sysctl(&self, place: SysctlPlace, key: &str) -> bool {
        match place {
            SysctlPlace::Host => exists_here(key),
            SysctlPlace::Namespace => {
                let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
                fresh
                    .get_or_insert_with(FreshNs::start)
                    .has(key)
                    .unwrap_or_else(|| exists_here(key))
            }
        }
    }
}
