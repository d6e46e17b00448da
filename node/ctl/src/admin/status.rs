//! `auctionctl status`: every member's own view of every group, as one table per group (role,
//! term, leader, last log, commit and apply indexes, snapshot, and the lag of each node
//! behind the leader's log as the leader sees it), or the raw answer with `--json`.
//!
//! The views are asked of each member directly by the node `auctionctl` talks to, so an
//! unreachable member shows as such instead of as a stale row.

use reqwest::Method;
use serde::Deserialize;

use super::Ctl;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    pub node_id: u64,
    pub matched_index: Option<u64>,
}

/// One node's view of one group.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub group_id: u64,
    pub state: String,
    pub term: u64,
    pub leader_id: Option<u64>,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub replication: Vec<Replica>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub node_id: u64,
    pub rpc_addr: String,
    pub reachable: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub groups: Vec<GroupView>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Members {
    pub asked_node: u64,
    pub members: Vec<Member>,
}

impl Members {
    pub async fn fetch(ctl: &Ctl) -> anyhow::Result<(Members, serde_json::Value)> {
        let raw = ctl
            .call_ok(Method::GET, "/api/v1/cluster/members", None)
            .await?;
        Ok((serde_json::from_value(raw.clone())?, raw))
    }

    /// Every group id any member reported.
    pub fn group_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .members
            .iter()
            .flat_map(|member| member.groups.iter().map(|group| group.group_id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Each member's view of `group` (`None` when unreachable or not hosting it).
    pub fn views(&self, group: u64) -> Vec<(&Member, Option<&GroupView>)> {
        self.members
            .iter()
            .map(|member| {
                let view = member.groups.iter().find(|view| view.group_id == group);
                (member, view)
            })
            .collect()
    }

    /// The view of the member that leads `group` in the highest term.
    pub fn leader_view(&self, group: u64) -> Option<&GroupView> {
        self.views(group)
            .into_iter()
            .filter_map(|(_, view)| view)
            .filter(|view| view.state == "leader")
            .max_by_key(|view| view.term)
    }
}

/// How far `node` is behind the leader's log, as the leader knows it.
pub fn lag(leader: &GroupView, node: u64, leader_id: u64) -> Option<u64> {
    let last = leader.last_log_index.unwrap_or(0);
    if node == leader_id {
        return Some(0);
    }
    leader
        .replication
        .iter()
        .find(|replica| replica.node_id == node)
        .map(|replica| last.saturating_sub(replica.matched_index.unwrap_or(0)))
}

fn show(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

fn ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "-".to_owned();
    }
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The table of one group.
pub fn render_group(members: &Members, group: u64) -> String {
    let leader = members.leader_view(group);
    let leader_id = members.views(group).into_iter().find_map(|(member, view)| {
        view.filter(|view| view.state == "leader")
            .map(|_| member.node_id)
    });
    let (voters, learners) = leader.map_or((String::new(), String::new()), |view| {
        (ids(&view.voters), ids(&view.learners))
    });
    let mut out = format!(
        "group {group}  leader {}  term {}  voters {}  learners {}\n",
        show(leader_id),
        show(leader.map(|view| view.term)),
        if voters.is_empty() { "?" } else { &voters },
        if learners.is_empty() { "?" } else { &learners },
    );
    out.push_str(&format!(
        "  {:<6} {:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
        "node", "role", "term", "last log", "committed", "applied", "snapshot", "lag"
    ));
    for (member, view) in members.views(group) {
        let Some(view) = view else {
            let why = member.error.as_deref().unwrap_or("does not host the group");
            out.push_str(&format!("  {:<6} unreachable: {why}\n", member.node_id));
            continue;
        };
        let lag = match (leader, leader_id) {
            (Some(leader), Some(leader_id)) => show(lag(leader, member.node_id, leader_id)),
            _ => "-".to_owned(),
        };
        out.push_str(&format!(
            "  {:<6} {:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
            member.node_id,
            view.state,
            view.term,
            show(view.last_log_index),
            show(view.committed_index),
            show(view.applied_index),
            show(view.snapshot_index),
            lag
        ));
    }
    out
}

/// `auctionctl status`.
pub async fn run(ctl: &Ctl) -> anyhow::Result<()> {
    let (members, raw) = Members::fetch(ctl).await?;
    if ctl.json {
        return ctl.print_json(&raw);
    }
    println!(
        "asked node {} ({}); members: {}",
        members.asked_node,
        ctl.node(),
        members
            .members
            .iter()
            .map(|member| format!(
                "{}@{}{}",
                member.node_id,
                member.rpc_addr,
                if member.reachable {
                    ""
                } else {
                    " (unreachable)"
                }
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for group in members.group_ids() {
        println!();
        print!("{}", render_group(&members, group));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: &str, last: u64, replication: Vec<(u64, u64)>) -> GroupView {
        GroupView {
            group_id: 1,
            state: state.to_owned(),
            term: 4,
            leader_id: Some(1),
            last_log_index: Some(last),
            committed_index: Some(last),
            applied_index: Some(last),
            snapshot_index: None,
            voters: vec![1, 2, 3],
            learners: vec![],
            replication: replication
                .into_iter()
                .map(|(node_id, matched)| Replica {
                    node_id,
                    matched_index: Some(matched),
                })
                .collect(),
        }
    }

    #[test]
    fn lag_is_the_leaders_last_log_minus_the_matched_index() {
        let leader = view("leader", 120, vec![(2, 120), (3, 100)]);
        assert_eq!(lag(&leader, 1, 1), Some(0));
        assert_eq!(lag(&leader, 2, 1), Some(0));
        assert_eq!(lag(&leader, 3, 1), Some(20));
        assert_eq!(lag(&leader, 4, 1), None, "not replicated to");
    }

    #[test]
    fn a_table_names_unreachable_members_and_the_leader() {
        let members = Members {
            asked_node: 1,
            members: vec![
                Member {
                    node_id: 1,
                    rpc_addr: "n1:7000".into(),
                    reachable: true,
                    error: None,
                    groups: vec![view("leader", 120, vec![(2, 118)])],
                },
                Member {
                    node_id: 2,
                    rpc_addr: "n2:7000".into(),
                    reachable: true,
                    error: None,
                    groups: vec![view("follower", 118, vec![])],
                },
                Member {
                    node_id: 3,
                    rpc_addr: "n3:7000".into(),
                    reachable: false,
                    error: Some("connection refused".into()),
                    groups: vec![],
                },
            ],
        };
        let table = render_group(&members, 1);
        assert!(
            table.starts_with("group 1  leader 1  term 4  voters 1,2,3"),
            "{table}"
        );
        assert!(table.contains("unreachable: connection refused"), "{table}");
        let row_2 = table
            .lines()
            .find(|line| line.trim_start().starts_with("2 "))
            .expect("a row for node 2");
        assert!(row_2.trim_end().ends_with(" 2"), "lag 2: {row_2}");
    }
}
