//! `auction-node certs`: makes the cluster CA (once) and the node certificates for node-to-node
//! mutual TLS, in the layout of `auction_raft::network::certs` (node `i` then runs with
//! `--tls-dir OUT/node-i`). Running it again with more nodes reuses the CA, so a node added to
//! the cluster later gets a certificate the others trust; existing node directories are kept.
//!
//! `--nodes 1=node1,2=node2,3` gives each node the host names or IPs peers dial it by (repeat an
//! id for several); every certificate also covers loopback.
//!
//! Not done yet: re-issuing one node's certificate (remove its directory and run again).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use auction_raft::network::certs;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// The certificate directory: the CA at its top, `node-<id>/` for each node.
    #[arg(long)]
    pub out: PathBuf,
    /// The nodes, as `ID` or `ID=HOST` (repeat, or comma-separate; an id given twice gets both
    /// hosts).
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
}

/// `ID[=HOST]` entries, merged per id.
pub fn parse_nodes(entries: &[String]) -> anyhow::Result<Vec<(u64, Vec<String>)>> {
    let mut nodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for entry in entries {
        let (id, host) = match entry.split_once('=') {
            Some((id, host)) => (id, Some(host.trim())),
            None => (entry.as_str(), None),
        };
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("node {entry:?} is not ID or ID=HOST"))?;
        if id == 0 {
            bail!("node ids are greater than 0 ({entry:?})");
        }
        let hosts = nodes.entry(id).or_default();
        match host {
            Some("") => bail!("node {entry:?} has an empty host"),
            Some(host) if !hosts.iter().any(|known| known == host) => hosts.push(host.to_owned()),
            _ => {}
        }
    }
    Ok(nodes.into_iter().collect())
}

pub fn run(args: &CertsArgs) -> anyhow::Result<()> {
    let nodes = parse_nodes(&args.nodes)?;
    let dirs = certs::ensure_cluster(&args.out, &nodes)?;
    println!(
        "cluster CA: {}",
        args.out.join(certs::CA_KEY_FILE).display()
    );
    for ((id, _), dir) in nodes.iter().zip(dirs) {
        println!("node {id}: --tls-dir {}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_parse_merge_and_bad_ones_are_refused() {
        let entries: Vec<String> = ["1=node1", "2", "1=10.0.0.1", "1=node1"]
            .map(str::to_owned)
            .to_vec();
        let nodes = parse_nodes(&entries).expect("valid");
        assert_eq!(
            nodes,
            vec![
                (1, vec!["node1".to_owned(), "10.0.0.1".to_owned()]),
                (2, Vec::new())
            ]
        );
        for bad in ["x", "0", "1=", "=node1"] {
            assert!(parse_nodes(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
