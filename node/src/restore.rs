//! `auction-node restore --from FILE --data-dir DIR --id N --peer …`: seeds a new node's data
//! directory from a backup (`auctionctl backup FILE`), so that a new cluster (new members,
//! the same data) starts from it.
//!
//! Run it on every node of the new cluster with the same file and the same members (its own
//! `--id` and address, and every other member as `--peer`), then start each node with the same
//! arguments minus `--from` and without `--init`: every node holds every group at the
//! backup's position with the new members as voters, and the groups elect leaders and go on
//! (the openraft side is `auction_raft::state_machine::backup`).
//!
//! In order, refusing before anything is written:
//! 1. the whole file is read and checked (header, every group's record count and digests,
//!    trailer, file digest; `auctionctl backup verify` runs the same checks);
//! 2. the backup's shard count must be `--shards` (a node refuses to start with another count
//!    anyway), every group must have a position, and the members must be valid;
//! 3. the data directory must be missing or empty (a `tls/` directory of credentials aside).
//!
//! Then a marker file ([`UNFINISHED_MARKER`]) is written, the file is read again and each group
//! written in bounded batches, its snapshot file written, the state read back and its digest
//! compared with the backup's, and each group's log seeded; the marker goes last. A node never
//! starts on a directory that still has the marker ([`refuse_unfinished`]): a restore that
//! failed half-way is done again into an emptied directory.
//!
//! Not done yet: nothing checks that every node was given the same members (a node restored
//! with other peers would not find its group's voters); images live in the object store,
//! which this does not back up (copy the bucket alongside).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use auction_raft::host::{NodeStorage, RocksStorage};
use auction_raft::state_machine::backup::{restored_state, seed_log, GroupRestore};
use auction_raft::state_machine::AppliedState;
use auction_statemachine::backup::{
    read_backup, BackupSummary, BackupVisitor, CheckOnly, SectionHeader, SectionSummary,
};
use auction_statemachine::GroupId;
use clap::Args;

use crate::config::NodeArgs;

/// Present in a data directory while a restore into it has not finished.
pub const UNFINISHED_MARKER: &str = "RESTORE-UNFINISHED";
/// Buffer of the backup file's reader.
const FILE_BUFFER_BYTES: usize = 1024 * 1024;

/// What a restore needs: the backup file and the node's own arguments (the same as `run`'s;
/// those that only matter to a running node are ignored).
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup file (`auctionctl backup FILE`).
    #[arg(long)]
    pub from: PathBuf,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Why a restore refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{} is not a sound backup: {source}", .file.display())]
    Unsound { file: PathBuf, source: io::Error },
    #[error(
        "the backup holds {backup} shards but this node is configured with --shards \
         {configured}: restore (and run) every node with --shards {backup}"
    )]
    ShardMismatch { backup: u32, configured: u32 },
    #[error("group {0} of the backup has no log position (it never applied an entry)")]
    NoPosition(GroupId),
    #[error(
        "{} is not empty: restore only into a new, empty data directory (a tls/ directory \
         of credentials may be there)", .0.display()
    )]
    NotEmpty(PathBuf),
    #[error(
        "{} holds an unfinished restore ({UNFINISHED_MARKER}): empty the directory and \
         restore again", .0.display()
    )]
    Unfinished(PathBuf),
    #[error("group {group}: the restored state's digest {found:016x} is not the backup's {expected:016x}")]
    DigestMismatch {
        group: GroupId,
        expected: u64,
        found: u64,
    },
    #[error("{0}")]
    Arguments(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> RestoreError {
    let context = context.into();
    move |source| RestoreError::Io { context, source }
}

/// Refuses a data directory whose restore has not finished (checked before a node starts).
pub fn refuse_unfinished(data_dir: &Path) -> Result<(), RestoreError> {
    if data_dir.join(UNFINISHED_MARKER).exists() {
        return Err(RestoreError::Unfinished(data_dir.to_path_buf()));
    }
    Ok(())
}

/// One restored group, as `restore` reports it.
#[derive(Debug, Clone)]
pub struct RestoredGroup {
    pub summary: SectionSummary,
    pub applied: AppliedState,
}

/// `auction-node restore`: checks, then writes (see the module documentation).
pub async fn run(args: &RestoreArgs) -> Result<Vec<RestoredGroup>, RestoreError> {
    let summary = verify(&args.from).await?;
    let members = check(args, &summary)?;
    let data_dir = args.node.data_dir.clone();
    check_empty(&data_dir)?;
    std::fs::create_dir_all(&data_dir).map_err(io_error("creating the data directory"))?;
    let marker = data_dir.join(UNFINISHED_MARKER);
    File::create(&marker).map_err(io_error("writing the restore marker"))?;
    let groups = write(args.from.clone(), data_dir.clone(), members, args.node.id).await?;
    std::fs::remove_file(&marker).map_err(io_error("removing the restore marker"))?;
    sync_dir(&data_dir)?;
    Ok(groups)
}

fn open_backup(file: &Path) -> Result<BufReader<File>, RestoreError> {
    let input = File::open(file).map_err(io_error(format!("opening {}", file.display())))?;
    Ok(BufReader::with_capacity(FILE_BUFFER_BYTES, input))
}

/// `auction-node restore`: restores, then prints what each group holds and how to start.
pub async fn run_and_report(args: &RestoreArgs) -> anyhow::Result<()> {
    let groups = run(args).await?;
    for group in &groups {
        let summary = &group.summary;
        let position = summary.header.position;
        println!(
            "group {:>4}  index {:>10}  term {:>4}  {:>9} records  digest {:016x}",
            summary.header.group,
            position.map_or(0, |position| position.index),
            position.map_or(0, |position| position.term),
            summary.records,
            summary.state_digest
        );
    }
    let voters: Vec<u64> = groups
        .first()
        .map(|group| group.applied.membership.membership().voter_ids().collect())
        .unwrap_or_default();
    println!(
        "node {} restored into {} with voters {voters:?}: start it with `auction-node run` and \
         the same arguments, without --from and without --init",
        args.node.id,
        args.node.data_dir.display()
    );
    Ok(())
}

/// The first pass: every check of the file, nothing written.
async fn verify(file: &Path) -> Result<BackupSummary, RestoreError> {
    let file = file.to_path_buf();
    blocking(move || {
        let input = open_backup(&file)?;
        read_backup(input, &mut CheckOnly).map_err(|source| RestoreError::Unsound { file, source })
    })
    .await
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RestoreError> + Send + 'static,
) -> Result<T, RestoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| RestoreError::Arguments(format!("the restore task failed: {error}")))?
}

/// The shard count, the positions and the members; returns the members (id to address).
fn check(
    args: &RestoreArgs,
    summary: &BackupSummary,
) -> Result<BTreeMap<u64, String>, RestoreError> {
    let configured = args.node.shards;
    if summary.header.shard_count != configured {
        return Err(RestoreError::ShardMismatch {
            backup: summary.header.shard_count,
            configured,
        });
    }
    if let Some(section) = summary
        .sections
        .iter()
        .find(|s| s.header.position.is_none())
    {
        return Err(RestoreError::NoPosition(section.header.group));
    }
    if args.node.id == 0 {
        return Err(RestoreError::Arguments(
            "--id must be greater than 0".to_owned(),
        ));
    }
    let mut members = args
        .node
        .peer_map()
        .map_err(|error| RestoreError::Arguments(format!("{error:#}")))?;
    members.insert(args.node.id, args.node.rpc_addr());
    Ok(members)
}

/// Missing, or empty but for a `tls/` directory.
fn check_empty(data_dir: &Path) -> Result<(), RestoreError> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io_error("reading the data directory")(error)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error("reading the data directory"))?;
        let is_tls = entry.file_name() == "tls" && entry.path().is_dir();
        if !is_tls {
            return Err(RestoreError::NotEmpty(data_dir.to_path_buf()));
        }
    }
    Ok(())
}

/// The second pass: every group's state and snapshot, then every group's log.
async fn write(
    file: PathBuf,
    data_dir: PathBuf,
    members: BTreeMap<u64, String>,
    node_id: u64,
) -> Result<Vec<RestoredGroup>, RestoreError> {
    let (storage, groups) = blocking(move || {
        let storage = RocksStorage::open(&data_dir).map_err(|error| {
            RestoreError::Arguments(format!("opening the new storage: {error}"))
        })?;
        let mut writer = GroupsWriter {
            storage: &storage,
            members: &members,
            current: None,
            done: Vec::new(),
        };
        read_backup(open_backup(&file)?, &mut writer)
            .map_err(io_error(format!("restoring from {}", file.display())))?;
        let done = writer.done;
        Ok((storage, done))
    })
    .await?;
    for group in &groups {
        let id = group.summary.header.group;
        let (mut log, _) = storage
            .open_group(id)
            .map_err(|error| RestoreError::Arguments(format!("group {id}: {error}")))?;
        seed_log(&mut log, node_id, &group.applied)
            .await
            .map_err(io_error(format!("group {id}: seeding the log")))?;
    }
    storage
        .close()
        .map_err(|error| RestoreError::Arguments(format!("closing the storage: {error}")))?;
    Ok(groups)
}

/// Writes each section into its group as the reader hands it over.
struct GroupsWriter<'a> {
    storage: &'a RocksStorage,
    members: &'a BTreeMap<u64, String>,
    current: Option<GroupRestore>,
    done: Vec<RestoredGroup>,
}

impl BackupVisitor for GroupsWriter<'_> {
    fn section_start(&mut self, header: &SectionHeader) -> io::Result<()> {
        let (_, backend) = self
            .storage
            .open_group(header.group)
            .map_err(|error| io::Error::other(format!("group {}: {error}", header.group)))?;
        self.current = Some(GroupRestore::new(backend));
        Ok(())
    }

    fn record(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        match self.current.as_mut() {
            Some(group) => group.record(key, value),
            None => Err(io::Error::other("a record outside a section")),
        }
    }

    fn section_end(&mut self, summary: &SectionSummary) -> io::Result<()> {
        let group = self
            .current
            .take()
            .ok_or_else(|| io::Error::other("a section end outside a section"))?;
        let id = summary.header.group;
        let position = summary
            .header
            .position
            .ok_or_else(|| io::Error::other(format!("group {id} has no position")))?;
        let applied = restored_state(position, self.members)?;
        let found = group.finish(&applied)?;
        if found != summary.state_digest {
            let mismatch = RestoreError::DigestMismatch {
                group: id,
                expected: summary.state_digest,
                found,
            };
            return Err(io::Error::other(mismatch.to_string()));
        }
        self.done.push(RestoredGroup {
            summary: *summary,
            applied,
        });
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), RestoreError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error("syncing the data directory"))
}
