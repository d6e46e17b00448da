//! The nodes' WAL syncs over the measured phase, from their `GET /metrics` (Prometheus text):
//! `auction_wal_syncs_total` (group-commit syncs) and `auction_wal_synced_entries_total` (log
//! entries they made durable), scraped from every node before and after the phase; the report
//! is the sum over the nodes of after minus before.
//!
//! A counter is the sum of all its series (`name value` or `name{labels} value`, an optional
//! timestamp after). A delta is unknown (`None`) when a scrape failed, a node's page lacks the
//! counter, or the counter went down (the node restarted): no guessing.
//!
//! The same scrape after the phase also reads each node's search index gauges
//! (`search_index_documents`, `search_index_disk_bytes`): what the index held and took then.
//!
//! Not here: the other metrics (histograms, other gauges), the `# TYPE` lines (names are
//! trusted).

use super::http::Http;

pub const WAL_SYNCS: &str = "auction_wal_syncs_total";
pub const WAL_SYNCED_ENTRIES: &str = "auction_wal_synced_entries_total";
pub const INDEX_DOCUMENTS: &str = "search_index_documents";
pub const INDEX_DISK_BYTES: &str = "search_index_disk_bytes";

/// The sum of every series of metric `name` in a Prometheus text page; `None` when it has none
/// (or a value that is not a finite number).
pub fn counter(page: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in page.lines().map(str::trim_start) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let after_labels = match rest.chars().next() {
            Some('{') => skip_labels(rest)?,
            Some(' ' | '\t') => rest,
            _ => continue, // a comment, or another metric whose name starts with this one
        };
        let value: f64 = after_labels.split_whitespace().next()?.parse().ok()?;
        if !value.is_finite() {
            return None;
        }
        sum = Some(sum.unwrap_or(0.0) + value);
    }
    sum
}

/// What follows the `{...}` that `text` starts with; label values are quoted and may hold
/// `}`, spaces and escaped quotes.
fn skip_labels(text: &str) -> Option<&str> {
    let (mut quoted, mut escaped) = (false, false);
    for (at, character) in text.char_indices() {
        match (quoted, escaped, character) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return Some(&text[at + 1..]),
            _ => {}
        }
    }
    None
}

/// One node's WAL counters at one moment (each `None` when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WalCounters {
    pub syncs: Option<u64>,
    pub synced_entries: Option<u64>,
}

fn whole(value: Option<f64>) -> Option<u64> {
    // A counter is a non-negative whole number; as f64 it is exact below 2^53.
    value
        .filter(|value| *value >= 0.0)
        .map(|value| value as u64)
}

impl WalCounters {
    pub fn from_page(page: &str) -> WalCounters {
        WalCounters {
            syncs: whole(counter(page, WAL_SYNCS)),
            synced_entries: whole(counter(page, WAL_SYNCED_ENTRIES)),
        }
    }
}

/// One node's search index at one moment (each `None` when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexGauges {
    pub documents: Option<u64>,
    pub disk_bytes: Option<u64>,
}

impl IndexGauges {
    pub fn from_page(page: &str) -> IndexGauges {
        IndexGauges {
            documents: whole(counter(page, INDEX_DOCUMENTS)),
            disk_bytes: whole(counter(page, INDEX_DISK_BYTES)),
        }
    }
}

/// What one scrape of one node read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scrape {
    pub wal: WalCounters,
    pub index: IndexGauges,
}

/// Every node's counters now, in node order (all `None` for a node whose scrape failed, with a
/// warning on stderr).
pub async fn scrape(http: &Http) -> Vec<Scrape> {
    let mut scrapes = Vec::with_capacity(http.node_count());
    for node in 0..http.node_count() {
        match http.get_text(node, "/metrics").await {
            Ok(page) => scrapes.push(Scrape {
                wal: WalCounters::from_page(&page),
                index: IndexGauges::from_page(&page),
            }),
            Err(error) => {
                eprintln!("warning: no metrics from node {node}: {error:#}");
                scrapes.push(Scrape::default());
            }
        }
    }
    scrapes
}

/// The sum over the nodes of `after - before`; `None` if any node's is unknown.
pub fn delta(before: &[Option<u64>], after: &[Option<u64>]) -> Option<u64> {
    if before.len() != after.len() {
        return None;
    }
    before
        .iter()
        .zip(after)
        .try_fold(0u64, |sum, (before, after)| {
            sum.checked_add(after.as_ref()?.checked_sub(*before.as_ref()?)?)
        })
}

/// The WAL syncs and synced entries of the phase between two scrapes.
pub fn deltas(before: &[Scrape], after: &[Scrape]) -> (Option<u64>, Option<u64>) {
    let pick = |scrapes: &[Scrape], field: fn(&WalCounters) -> Option<u64>| {
        scrapes
            .iter()
            .map(|scrape| field(&scrape.wal))
            .collect::<Vec<_>>()
    };
    (
        delta(&pick(before, |c| c.syncs), &pick(after, |c| c.syncs)),
        delta(
            &pick(before, |c| c.synced_entries),
            &pick(after, |c| c.synced_entries),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# HELP auction_wal_syncs_total WAL syncs (one makes the appends of every group durable).
# TYPE auction_wal_syncs_total counter
auction_wal_syncs_total 1500
auction_wal_syncs_total_created 17
auction_wal_synced_entries_total{disk=\"a\"} 4000
auction_wal_synced_entries_total{disk=\"b } \\\"x\\\" {\",kind=\"raft\"} 250 1712345678000
auction_wal_sync_seconds_bucket{le=\"0.001\"} 3
search_index_documents 33334
";

    #[test]
    fn counters_sum_every_series_and_only_their_own() {
        assert_eq!(counter(PAGE, WAL_SYNCS), Some(1_500.0));
        assert_eq!(counter(PAGE, WAL_SYNCED_ENTRIES), Some(4_250.0));
        assert_eq!(counter(PAGE, "auction_wal_sync_seconds_bucket"), Some(3.0));
        assert_eq!(counter(PAGE, "auction_wal"), None, "a prefix is not a name");
        assert_eq!(counter(PAGE, "auction_absent_total"), None);
        assert_eq!(counter("x_total{a=\"unclosed 3", "x_total"), None);
        assert_eq!(counter("x_total NaN", "x_total"), None);
        assert_eq!(counter("x_total 1.5e3\n", "x_total"), Some(1_500.0));
        let counters = WalCounters::from_page(PAGE);
        assert_eq!(
            (counters.syncs, counters.synced_entries),
            (Some(1_500), Some(4_250))
        );
        assert_eq!(
            IndexGauges::from_page(PAGE),
            IndexGauges {
                documents: Some(33_334),
                disk_bytes: None
            },
            "a node without an index on disk"
        );
    }

    #[test]
    fn deltas_add_up_over_nodes_and_are_unknown_when_any_node_is() {
        assert_eq!(delta(&[Some(10), Some(5)], &[Some(15), Some(25)]), Some(25));
        assert_eq!(delta(&[Some(10), None], &[Some(15), Some(25)]), None);
        assert_eq!(delta(&[Some(10)], &[Some(9)]), None, "a restarted node");
        assert_eq!(delta(&[Some(1)], &[Some(2), Some(3)]), None);
        let node = |syncs, synced_entries| Scrape {
            wal: WalCounters {
                syncs,
                synced_entries,
            },
            index: IndexGauges::default(),
        };
        let before = [node(Some(1), Some(10)), node(Some(2), Some(20))];
        let after = [node(Some(4), Some(40)), node(Some(6), None)];
        assert_eq!(deltas(&before, &after), (Some(7), None));
    }
}
