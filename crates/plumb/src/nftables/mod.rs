//! nf_tables, for now through the `nft` program: one `nft -j` transaction per change of a
//! namespace's table, and reads of plumb's own tables. Run from a thread inside the namespace
//! (the child inherits the thread's network namespace).
//!
//! This is the one place plumb still starts a process; it goes when nf_tables is spoken over
//! netlink. plumb writes only its own tables (`inet plumb-LAB`) and never flushes or edits
//! anyone else's rules.

use std::io;
use std::process::Command;

use serde_json::{json, Value};

/// A firewall operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    /// The batch did not match the nftables JSON schema (a bug in plumb).
    #[error("internal error: the nftables batch for {table} is malformed: {source}")]
    Schema {
        /// The table.
        table: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// `nft` could not be started.
    #[error("cannot run nft for table {table}: {source}")]
    Spawn {
        /// The table.
        table: String,
        /// Why (the errno is kept).
        #[source]
        source: io::Error,
    },
    /// `nft` refused the batch or the request.
    #[error("nft refused to {op} table {table}: {message}")]
    Refused {
        /// `apply`, `list`.
        op: &'static str,
        /// The table.
        table: String,
        /// What nft said.
        message: String,
    },
    /// `nft -j` printed something that is not its JSON.
    #[error("cannot read nft's output for table {table}: {source}")]
    Output {
        /// The table.
        table: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl NftError {
    /// The errno underneath, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Spawn { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Applies an nftables JSON batch in the calling thread's network namespace: one `nft -j -f -`,
/// one atomic transaction.
pub fn apply(table: &str, batch: &Value) -> Result<(), NftError> {
    let doc: nftables::schema::Nftables =
        serde_json::from_value(batch.clone()).map_err(|source| NftError::Schema {
            table: table.to_string(),
            source,
        })?;
    nftables::helper::apply_ruleset(&doc).map_err(|e| match e {
        nftables::helper::NftablesError::NftExecution { inner, .. } => NftError::Spawn {
            table: table.to_string(),
            source: inner,
        },
        other => NftError::Refused {
            op: "apply",
            table: table.to_string(),
            message: other.to_string(),
        },
    })
}

/// Lists `inet TABLE` in the calling thread's namespace: `Ok(None)` when it does not exist, or
/// when nft is not installed (then no table of plumb's can exist either).
fn list(table: &str) -> Result<Option<Value>, NftError> {
    let out = match Command::new("nft")
        .args(["-j", "list", "table", "inet", table])
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(NftError::Spawn {
                table: table.to_string(),
                source,
            })
        }
    };
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if msg.contains("No such file or directory") {
            return Ok(None);
        }
        return Err(NftError::Refused {
            op: "list",
            table: table.to_string(),
            message: msg,
        });
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|source| NftError::Output {
            table: table.to_string(),
            source,
        })
}

/// The version marker of `table` (its `v-VERSION` chain) in the calling thread's namespace:
/// `None` when the table does not exist, `Some("")` for a table without a marker.
pub fn current_version(table: &str) -> Result<Option<String>, NftError> {
    Ok(list(table)?.map(|v| {
        v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|o| {
                o.get("chain")
                    .and_then(|c| c["name"].as_str())
                    .and_then(|n| n.strip_prefix("v-"))
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }))
}

/// What a table holds, as `show` needs it: its chains (with their policies) and each rule's
/// chain and comment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Listing {
    /// Chains in listing order.
    pub chains: Vec<ChainListing>,
    /// Rules in listing order.
    pub rules: Vec<RuleListing>,
}

/// One chain of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainListing {
    /// Its name.
    pub name: String,
    /// Its hook, for a base chain.
    pub hook: Option<String>,
    /// Its policy (`accept`, `drop`), for a base chain.
    pub policy: Option<String>,
}

/// One rule of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleListing {
    /// Its chain.
    pub chain: String,
    /// Its comment, if it has one.
    pub comment: Option<String>,
}

/// Lists `inet TABLE` in the calling thread's namespace as a [`Listing`] (`None` when there is
/// no such table).
pub fn listing(table: &str) -> Result<Option<Listing>, NftError> {
    Ok(list(table)?.map(|v| parse_listing(&v)))
}

fn parse_listing(v: &Value) -> Listing {
    let mut out = Listing::default();
    let text = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    for o in v["nftables"].as_array().into_iter().flatten() {
        if let Some(c) = o.get("chain") {
            out.chains.push(ChainListing {
                name: text(c, "name").unwrap_or_default(),
                hook: text(c, "hook"),
                policy: text(c, "policy"),
            });
        } else if let Some(r) = o.get("rule") {
            out.rules.push(RuleListing {
                chain: text(r, "chain").unwrap_or_default(),
                comment: text(r, "comment"),
            });
        }
    }
    out
}

/// Reads `table` as it is now, as the batch that would recreate it exactly (`None` if there is
/// no such table): what rollback applies to restore a table a failed run replaced.
pub fn save(table: &str) -> Result<Option<Value>, NftError> {
    Ok(list(table)?.map(|v| restore_batch(table, &v)))
}

/// Turns the output of `nft -j list table inet TABLE` into a batch that replaces the table with
/// exactly that content: the listed objects become `add` commands, without their handles.
pub fn restore_batch(table: &str, listing: &Value) -> Value {
    let mut cmds = vec![
        json!({"add": {"table": {"family": "inet", "name": table}}}),
        json!({"delete": {"table": {"family": "inet", "name": table}}}),
    ];
    for o in listing["nftables"].as_array().into_iter().flatten() {
        let Some((kind, body)) = o.as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        if kind == "metainfo" {
            continue;
        }
        let mut body = body.clone();
        if let Some(m) = body.as_object_mut() {
            m.remove("handle");
        }
        cmds.push(json!({"add": {kind.as_str(): body}}));
    }
    json!({ "nftables": cmds })
}

/// Foreign base chains with a `drop` policy on the forward hook: they would drop a lab's
/// forwarded traffic whatever plumb's table accepts. Returns "family table/chain" for each.
/// Best effort: a warning, so a failure to read is no warning.
pub fn foreign_forward_drops(own_table: &str) -> Vec<String> {
    let Ok(out) = Command::new("nft").args(["-j", "list", "chains"]).output() else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for o in v["nftables"].as_array().into_iter().flatten() {
        let Some(c) = o.get("chain") else { continue };
        if c["hook"] == "forward" && c["policy"] == "drop" && c["table"] != own_table {
            found.push(format!(
                "{} {}/{}",
                c["family"].as_str().unwrap_or("?"),
                c["table"].as_str().unwrap_or("?"),
                c["name"].as_str().unwrap_or("?")
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_batch_replaces_the_table_with_the_listed_objects_without_handles() {
        let listing = json!({"nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "inet", "name": "plumb-x", "handle": 3}},
            {"chain": {"family": "inet", "table": "plumb-x", "name": "v-abc", "handle": 1}},
            {"rule": {"family": "inet", "table": "plumb-x", "chain": "input", "handle": 4,
                      "expr": [{"accept": null}]}}
        ]});
        let b = restore_batch("plumb-x", &listing);
        let cmds = b["nftables"].as_array().unwrap();
        assert_eq!(cmds.len(), 5);
        assert_eq!(
            cmds[1],
            json!({"delete": {"table": {"family": "inet", "name": "plumb-x"}}})
        );
        assert_eq!(
            cmds[4],
            json!({"add": {"rule": {"family": "inet", "table": "plumb-x", "chain": "input",
                                    "expr": [{"accept": null}]}}})
        );
        let doc: Result<nftables::schema::Nftables, _> = serde_json::from_value(b);
        assert!(doc.is_ok(), "{doc:?}");
    }
}
