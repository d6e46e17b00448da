//! [`TantivyIndex`]: the [`SearchIndex`] on tantivy, on disk (memory-mapped) or in RAM.
//!
//! Writes go through one [`IndexWriter`] (one indexing thread, [`WRITER_MEMORY_BYTES`]) in
//! [`Batch`]es: the indexer upserts and removes documents, replaces a whole group when it
//! rescans one, and commits with every group's indexed log index in the commit payload, so
//! the positions and the documents are durable together. Reads use a manually reloaded
//! reader: every commit is visible to the next search.
//!
//! A page is collected by [`PageCollector`]: the `limit + 1` first documents in the sort order
//! after the cursor (ties broken by auction id), with the total count and, for search, the
//! category counts, in one pass over the matching documents. Memory per request is bounded by
//! the page size and by [`super::FACET_VALUES_MAX`].

use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use auction_raft::GroupId;
use auction_statemachine::{codec, Auction, AuctionId, ImageFile};
use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, Count, FacetCollector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::directory::MmapDirectory;
use tantivy::schema::{Facet, Value};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher,
    SegmentOrdinal, SegmentReader, TantivyDocument, Term,
};
use tokio::time::Instant;

use super::live::{self, LiveOverlay, LiveView, PriceFilter};
use super::params::SearchCursor;
use super::schema::{self, Fields, SCHEMA_VERSION};
use super::{
    query, GroupLag, IndexUsage, SearchIndex, SearchPage, SearchRequest, SearchSort,
    FACET_VALUES_MAX,
};
use crate::error::{ApiError, ApiResult};

/// The indexing memory budget of the one writer thread (tantivy needs at least 15 MB).
pub const WRITER_MEMORY_BYTES: usize = 32 * 1024 * 1024;
/// Index snapshots kept for cursors, at most (each keeps its segments alive).
pub const PINNED_SNAPSHOTS_MAX: usize = 16;
/// How long a snapshot stays pinned for cursors, at most.
pub const PINNED_SNAPSHOT_AGE_MS_MAX: u64 = 60_000;

fn index_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("search index: {error}"))
}

/// What a commit payload holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Payload {
    version: u32,
    /// Per group: the log index the documents reflect.
    positions: BTreeMap<GroupId, u64>,
}

/// How [`TantivyIndex::open`] found the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// An index of this schema, with the positions of its last commit.
    Existing,
    /// Nothing usable was there (missing, unreadable, another schema): a new empty index.
    Rebuilt,
}

struct Pinned {
    at: Instant,
    searcher: Searcher,
    live: LiveView,
}

/// The search index of one node.
pub struct TantivyIndex {
    fields: Fields,
    reader: IndexReader,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    analyzer: TextAnalyzer,
    positions: Mutex<BTreeMap<GroupId, u64>>,
    /// Per group: when the oldest applied change not yet committed was applied.
    unindexed_since: Mutex<BTreeMap<GroupId, Instant>>,
    /// Pinned snapshots by pin number (what a cursor's `generation` names).
    pins: Mutex<BTreeMap<u64, Pinned>>,
    next_pin: Mutex<u64>,
    /// Live prices and bid counts newer than the documents ([`live`]).
    live: LiveOverlay,
    /// Per group: the log index up to which every change is searchable (committed or live),
    /// ahead of the committed position while bids wait in the overlay.
    searchable: Mutex<BTreeMap<GroupId, u64>>,
    /// Where the index's files are (`None` in RAM).
    dir: Option<PathBuf>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves consistent data (plain maps, the writer).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TantivyIndex {
    /// An index in RAM (tests, the simulator): starts empty, every group to be scanned.
    pub fn in_memory() -> ApiResult<TantivyIndex> {
        let fields = Fields::new();
        let index = Index::create_in_ram(fields.schema.clone());
        TantivyIndex::from_index(fields, index, None)
    }

    /// The index in `dir`, or a new empty one there when what is there cannot be used.
    pub fn open(dir: &Path) -> ApiResult<(TantivyIndex, Opened)> {
        match TantivyIndex::open_existing(dir) {
            Ok(Some(index)) => return Ok((index, Opened::Existing)),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %error.message, dir = %dir.display(), "the search index is unusable: rebuilding it");
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(index_error)?;
        }
        std::fs::create_dir_all(dir).map_err(index_error)?;
        let fields = Fields::new();
        let directory = MmapDirectory::open(dir).map_err(index_error)?;
        let index = Index::create(directory, fields.schema.clone(), Default::default())
            .map_err(index_error)?;
        let opened = TantivyIndex::from_index(fields, index, Some(dir.to_path_buf()))?;
        Ok((opened, Opened::Rebuilt))
    }

    /// `None` when there is no index in `dir`; an error when there is one this build cannot use.
    fn open_existing(dir: &Path) -> ApiResult<Option<TantivyIndex>> {
        if !dir.join("meta.json").exists() {
            return Ok(None);
        }
        let directory = MmapDirectory::open(dir).map_err(index_error)?;
        let index = Index::open(directory).map_err(index_error)?;
        let fields = Fields::new();
        let same_schema = serde_json::to_string(&index.schema()).map_err(index_error)?
            == serde_json::to_string(&fields.schema).map_err(index_error)?;
        if !same_schema {
            return Err(index_error("another schema"));
        }
        let opened = TantivyIndex::from_index(fields, index, Some(dir.to_path_buf()))?;
        // Reads every segment once, so that a damaged one is found now rather than later.
        let searcher = opened.reader.searcher();
        for segment in searcher.segment_readers() {
            segment.get_store_reader(1).map_err(index_error)?;
        }
        Ok(Some(opened))
    }

    fn from_index(fields: Fields, index: Index, dir: Option<PathBuf>) -> ApiResult<TantivyIndex> {
        let payload: Payload = match index.load_metas().map_err(index_error)?.payload {
            Some(text) => serde_json::from_str(&text).map_err(index_error)?,
            None => Payload {
                version: SCHEMA_VERSION,
                positions: BTreeMap::new(),
            },
        };
        if payload.version != SCHEMA_VERSION {
            return Err(index_error(format!("schema version {}", payload.version)));
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error)?;
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY_BYTES)
            .map_err(index_error)?;
        let analyzer = index
            .tokenizer_for_field(fields.title)
            .map_err(index_error)?;
        Ok(TantivyIndex {
            fields,
            reader,
            writer: Mutex::new(writer),
            analyzer,
            positions: Mutex::new(payload.positions),
            unindexed_since: Mutex::new(BTreeMap::new()),
            pins: Mutex::new(BTreeMap::new()),
            next_pin: Mutex::new(0),
            live: LiveOverlay::default(),
            searchable: Mutex::new(BTreeMap::new()),
            dir,
        })
    }

    /// Per group: the log index the committed documents reflect.
    pub fn positions(&self) -> BTreeMap<GroupId, u64> {
        lock(&self.positions).clone()
    }

    /// The live overlay the indexer writes bids to.
    pub fn live(&self) -> &LiveOverlay {
        &self.live
    }

    /// Records that every change of `group` up to `index` is searchable (the indexer's, when
    /// only live changes came since its last commit).
    pub fn set_searchable(&self, group: GroupId, index: u64) {
        let mut searchable = lock(&self.searchable);
        let entry = searchable.entry(group).or_default();
        *entry = (*entry).max(index);
    }

    /// Starts a batch of writes; one at a time (the indexer's).
    pub fn begin(&self) -> Batch<'_> {
        Batch {
            index: self,
            writer: lock(&self.writer),
            positions: self.positions(),
        }
    }

    /// Records which groups have applied changes that are not searchable yet, and since when.
    pub fn set_unindexed(&self, since: BTreeMap<GroupId, Instant>) {
        *lock(&self.unindexed_since) = since;
    }

    /// Documents in the index (committed).
    pub fn document_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The bytes of the files in the index directory (flat: tantivy writes no subdirectories).
    fn disk_bytes(&self) -> Option<u64> {
        let entries = std::fs::read_dir(self.dir.as_ref()?).ok()?;
        let sizes = entries.filter_map(|entry| entry.ok()?.metadata().ok());
        Some(
            sizes
                .filter(|meta| meta.is_file())
                .map(|meta| meta.len())
                .sum(),
        )
    }

    fn lag_ms_max(&self) -> u64 {
        let now = Instant::now();
        lock(&self.unindexed_since)
            .values()
            .map(|since| elapsed_ms(now, *since))
            .max()
            .unwrap_or(0)
    }

    /// The snapshot a page reads: the cursor's pinned one when it is still kept (with its pin
    /// number), else the current index and overlay.
    fn snapshot_for(&self, cursor: Option<&SearchCursor>) -> (Searcher, LiveView, Option<u64>) {
        let mut pins = lock(&self.pins);
        let now = Instant::now();
        pins.retain(|_, pinned| elapsed_ms(now, pinned.at) <= PINNED_SNAPSHOT_AGE_MS_MAX);
        if let Some(pin) = cursor.map(|cursor| cursor.generation) {
            if let Some(pinned) = pins.get(&pin) {
                return (pinned.searcher.clone(), pinned.live.clone(), Some(pin));
            }
        }
        (self.reader.searcher(), self.live.view(), None)
    }

    /// Keeps the snapshot for the next pages of a listing that has more; its pin number.
    fn pin(&self, searcher: &Searcher, live: &LiveView) -> u64 {
        let pin = {
            let mut next = lock(&self.next_pin);
            *next += 1;
            *next
        };
        let mut pins = lock(&self.pins);
        while pins.len() >= PINNED_SNAPSHOTS_MAX {
            let Some(oldest) = pins.keys().next().copied() else {
                break;
            };
            pins.remove(&oldest);
        }
        pins.insert(
            pin,
            Pinned {
                at: Instant::now(),
                searcher: searcher.clone(),
                live: live.clone(),
            },
        );
        pin
    }

    fn auction_at(
        &self,
        searcher: &Searcher,
        live: &LiveView,
        (id, address): (u128, DocAddress),
    ) -> ApiResult<(Auction, Option<ImageFile>)> {
        let doc: TantivyDocument = searcher.doc(address).map_err(index_error)?;
        let bytes = doc
            .get_first(self.fields.auction)
            .and_then(|value| value.as_bytes())
            .ok_or_else(|| index_error("a document without its auction"))?;
        let auction = live::rendered(live, id, codec::decode(bytes).map_err(index_error)?);
        let cover = doc
            .get_first(self.fields.cover)
            .and_then(|value| value.as_bytes())
            .map(codec::decode)
            .transpose()
            .map_err(index_error)?;
        Ok((auction, cover))
    }
}

fn elapsed_ms(now: Instant, since: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(u64::MAX)
}

/// Writes of one commit.
pub struct Batch<'a> {
    index: &'a TantivyIndex,
    writer: MutexGuard<'a, IndexWriter<TantivyDocument>>,
    positions: BTreeMap<GroupId, u64>,
}

impl Batch<'_> {
    fn id_term(&self, id: AuctionId) -> Term {
        Term::from_field_text(self.index.fields.id, &id.0.simple().to_string())
    }

    /// Removes every document of `group` (a rescan adds them back in the same commit).
    pub fn clear_group(&mut self, group: GroupId) {
        let term = Term::from_field_u64(self.index.fields.group, u64::from(group));
        self.writer.delete_term(term);
    }

    /// Adds or replaces the document of `auction` (with the thumbnail of its first image).
    pub fn upsert(
        &mut self,
        group: GroupId,
        auction: &Auction,
        cover: Option<&ImageFile>,
    ) -> ApiResult<()> {
        self.writer.delete_term(self.id_term(auction.id));
        let doc = self.index.fields.document(group, auction, cover);
        self.writer.add_document(doc).map_err(index_error)?;
        Ok(())
    }

    /// Removes the document of an auction that no longer exists.
    pub fn remove(&mut self, id: AuctionId) {
        self.writer.delete_term(self.id_term(id));
    }

    /// Records that the documents of `group` reflect its log up to `index`.
    pub fn set_position(&mut self, group: GroupId, index: u64) {
        self.positions.insert(group, index);
    }

    /// Makes the batch durable and searchable, with the positions in the commit payload.
    pub fn commit(mut self) -> ApiResult<()> {
        let payload = serde_json::to_string(&Payload {
            version: SCHEMA_VERSION,
            positions: self.positions.clone(),
        })
        .map_err(index_error)?;
        let mut prepared = self.writer.prepare_commit().map_err(index_error)?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(index_error)?;
        self.index.reader.reload().map_err(index_error)?;
        *lock(&self.index.positions) = std::mem::take(&mut self.positions);
        Ok(())
    }
}

impl SearchIndex for TantivyIndex {
    fn search(&self, request: &SearchRequest) -> ApiResult<SearchPage> {
        // Relevance without words has nothing to rank: newest first.
        let sort = match (request.sort, &request.text) {
            (SearchSort::Relevance, None) => SearchSort::Newest,
            (sort, _) => sort,
        };
        let (searcher, live, pinned) = self.snapshot_for(request.cursor.as_ref());
        let mut analyzer = self.analyzer.clone();
        let query = query::build(&self.fields, &mut analyzer, request);
        let page = PageCollector {
            sort,
            after: request.cursor.map(|cursor| (cursor.key, cursor.id)),
            limit: request.limit + 1,
            live: live.clone(),
        };
        let facets = request.facets.then(|| {
            let mut facets = FacetCollector::for_field("category");
            facets.add_facet(Facet::root());
            facets
        });
        let collectors = (Count, page, facets);
        let (min, max) = (request.filter.min_price, request.filter.max_price);
        // The price filter reads live prices, so it is a collector rather than a range query.
        let fruit = if min.is_some() || max.is_some() {
            let filtered = PriceFilter {
                inner: collectors,
                view: live.clone(),
                min,
                max,
            };
            searcher.search(&*query, &filtered)
        } else {
            searcher.search(&*query, &collectors)
        };
        let (total, mut hits, facets) = fruit.map_err(index_error)?;
        let more = hits.len() > request.limit;
        hits.truncate(request.limit);
        let next_cursor = match (more, hits.last()) {
            (true, Some((position, _))) => Some(SearchCursor {
                sort: request.sort,
                generation: pinned.unwrap_or_else(|| self.pin(&searcher, &live)),
                key: position.0,
                id: position.1,
            }),
            _ => None,
        };
        let (auctions, covers) = hits
            .iter()
            .map(|(position, address)| self.auction_at(&searcher, &live, (position.1, *address)))
            .collect::<ApiResult<Vec<_>>>()?
            .into_iter()
            .unzip();
        let categories = facets
            .map(|counts| {
                counts
                    .top_k("/", FACET_VALUES_MAX)
                    .into_iter()
                    .filter_map(|(facet, count)| {
                        let name = facet.to_path().last().map(|name| (*name).to_owned())?;
                        Some((name, count))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(SearchPage {
            auctions,
            covers,
            next_cursor,
            total: u64::try_from(total).unwrap_or(u64::MAX),
            categories,
            lag_ms: self.lag_ms_max(),
        })
    }

    fn usage(&self) -> IndexUsage {
        IndexUsage {
            documents: self.document_count(),
            disk_bytes: self.disk_bytes(),
            writer_memory_bytes: WRITER_MEMORY_BYTES as u64,
            live_auctions: self.live.len() as u64,
        }
    }

    fn lag(&self) -> Vec<GroupLag> {
        let now = Instant::now();
        let since = lock(&self.unindexed_since).clone();
        let positions = self.positions();
        let searchable = lock(&self.searchable).clone();
        let mut groups: Vec<GroupId> = positions.keys().chain(since.keys()).copied().collect();
        groups.sort_unstable();
        groups.dedup();
        let position = |group: &GroupId| positions.get(group).copied().unwrap_or(0);
        let live = |group: &GroupId| searchable.get(group).copied().unwrap_or(0);
        groups
            .into_iter()
            .map(|group| GroupLag {
                group,
                indexed_index: position(&group).max(live(&group)),
                lag_ms: since.get(&group).map_or(0, |at| elapsed_ms(now, *at)),
            })
            .collect()
    }
}

/// A document's place in the page order: ascending `(key, auction id)`.
type Position = (i64, u128);

/// Collects the first `limit` documents after `after` in the order of `sort`.
struct PageCollector {
    sort: SearchSort,
    after: Option<Position>,
    limit: usize,
    live: LiveView,
}

enum KeyColumn {
    Score,
    /// The value, negated for a descending order.
    Signed(Column<i64>, bool),
    /// The price or the bid count, which the live overlay may have newer than the column.
    LivePrice(Column<i64>, bool),
    LiveBids(Column<u64>, bool),
}

struct PageSegment {
    segment: SegmentOrdinal,
    key: KeyColumn,
    live: LiveView,
    id_high: Column<u64>,
    id_low: Column<u64>,
    after: Option<Position>,
    limit: usize,
    /// The `limit` smallest positions seen, largest on top.
    best: BinaryHeap<(Position, DocId)>,
}

impl Collector for PageCollector {
    type Fruit = Vec<(Position, DocAddress)>;
    type Child = PageSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<PageSegment> {
        let fast = reader.fast_fields();
        let key = match self.sort {
            SearchSort::Relevance => KeyColumn::Score,
            SearchSort::EndingSoon => KeyColumn::Signed(fast.i64(schema::END_TIME)?, false),
            SearchSort::Newest => KeyColumn::Signed(fast.i64(schema::CREATED_AT)?, true),
            SearchSort::PriceAsc => KeyColumn::LivePrice(fast.i64(schema::PRICE_CENTS)?, false),
            SearchSort::PriceDesc => KeyColumn::LivePrice(fast.i64(schema::PRICE_CENTS)?, true),
            SearchSort::MostBids => KeyColumn::LiveBids(fast.u64(schema::BID_COUNT)?, true),
        };
        Ok(PageSegment {
            segment,
            key,
            live: self.live.clone(),
            id_high: fast.u64(schema::ID_HIGH)?,
            id_low: fast.u64(schema::ID_LOW)?,
            after: self.after,
            limit: self.limit,
            best: BinaryHeap::with_capacity(self.limit + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.sort == SearchSort::Relevance
    }

    fn merge_fruits(
        &self,
        fruits: Vec<Vec<(Position, DocAddress)>>,
    ) -> tantivy::Result<Vec<(Position, DocAddress)>> {
        let mut all: Vec<_> = fruits.into_iter().flatten().collect();
        all.sort_unstable_by_key(|(position, _)| *position);
        all.truncate(self.limit);
        Ok(all)
    }
}

/// `value` in ascending key order: negated for a descending sort.
fn ordered(value: i64, descending: bool) -> i64 {
    if descending {
        value.saturating_neg()
    } else {
        value
    }
}

fn signed(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl PageSegment {
    fn key(&self, doc: DocId, id: u128, score: Score) -> i64 {
        let live = || self.live.get(&id);
        match &self.key {
            // Higher scores first; scores are never negative, so their bits order like them.
            KeyColumn::Score => -i64::from(score.max(0.0).to_bits()),
            KeyColumn::Signed(column, descending) => {
                ordered(column.first(doc).unwrap_or(0), *descending)
            }
            KeyColumn::LivePrice(column, descending) => {
                let price = match live() {
                    Some(doc) => doc.price_cents,
                    None => column.first(doc).unwrap_or(0),
                };
                ordered(price, *descending)
            }
            KeyColumn::LiveBids(column, descending) => {
                let bids = match live() {
                    Some(doc) => doc.bid_count,
                    None => column.first(doc).unwrap_or(0),
                };
                ordered(signed(bids), *descending)
            }
        }
    }
}

impl SegmentCollector for PageSegment {
    type Fruit = Vec<(Position, DocAddress)>;

    fn collect(&mut self, doc: DocId, score: Score) {
        let id = live::doc_id(&self.id_high, &self.id_low, doc);
        let position = (self.key(doc, id, score), id);
        if self.after.is_some_and(|after| position <= after) {
            return;
        }
        if self.best.len() == self.limit {
            match self.best.peek() {
                Some((worst, _)) if position < *worst => {
                    self.best.pop();
                }
                _ => return,
            }
        }
        self.best.push((position, doc));
    }

    fn harvest(self) -> Self::Fruit {
        let segment = self.segment;
        self.best
            .into_iter()
            .map(|(position, doc)| (position, DocAddress::new(segment, doc)))
            .collect()
    }
}
