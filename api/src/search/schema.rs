//! The index's schema: one document per auction.
//!
//! Text: `title` and `description` (tokenized, lower-cased, with positions off: relevance is
//! BM25 over terms). Filters and sorts read fast fields: `phase`, `start_time` (status at a
//! given time), `price_cents` (the current price, else the starting price), `end_time`,
//! `created_at`, `bid_count`; `category` is a facet (filter and counts), `seller` and `id`
//! exact strings, `group` the owning shard (a rescan deletes its documents by it). The whole
//! auction is stored encoded in `auction`, so a page is rendered from the index alone, and
//! the thumbnail of its first image in `cover`, so a listing shows it without another read.

use auction_statemachine::{codec, Auction, ImageFile, Phase};
use tantivy::schema::{
    Facet, FacetOptions, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing,
    TextOptions, FAST, INDEXED, STORED, STRING,
};
use tantivy::TantivyDocument;

use crate::listing::display_price;
use crate::search::params::id_key;

/// Bumped whenever the schema or the meaning of a field changes: an index written with
/// another version is rebuilt.
pub const SCHEMA_VERSION: u32 = 2;

/// The fields of [`Fields::schema`].
#[derive(Debug, Clone)]
pub struct Fields {
    pub schema: Schema,
    pub id: Field,
    pub id_high: Field,
    pub id_low: Field,
    pub group: Field,
    pub title: Field,
    pub description: Field,
    pub category: Field,
    pub seller: Field,
    pub phase: Field,
    pub start_time: Field,
    pub end_time: Field,
    pub created_at: Field,
    pub price_cents: Field,
    pub bid_count: Field,
    pub auction: Field,
    pub cover: Field,
}

pub const ID_HIGH: &str = "id_high";
pub const ID_LOW: &str = "id_low";
pub const PHASE: &str = "phase";
pub const START_TIME: &str = "start_time";
pub const END_TIME: &str = "end_time";
pub const CREATED_AT: &str = "created_at";
pub const PRICE_CENTS: &str = "price_cents";
pub const BID_COUNT: &str = "bid_count";

impl Fields {
    pub fn new() -> Fields {
        let mut builder = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("default")
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let number = || NumericOptions::default().set_indexed().set_fast();
        let id = builder.add_text_field("id", STRING);
        let id_high = builder.add_u64_field(ID_HIGH, FAST);
        let id_low = builder.add_u64_field(ID_LOW, FAST);
        let group = builder.add_u64_field("group", INDEXED);
        let title = builder.add_text_field("title", text.clone());
        let description = builder.add_text_field("description", text);
        let category = builder.add_facet_field("category", FacetOptions::default());
        let seller = builder.add_text_field("seller", STRING);
        let phase = builder.add_u64_field(PHASE, number());
        let start_time = builder.add_i64_field(START_TIME, number());
        let end_time = builder.add_i64_field(END_TIME, FAST);
        let created_at = builder.add_i64_field(CREATED_AT, FAST);
        let price_cents = builder.add_i64_field(PRICE_CENTS, number());
        let bid_count = builder.add_u64_field(BID_COUNT, FAST);
        let auction = builder.add_bytes_field("auction", STORED);
        let cover = builder.add_bytes_field("cover", STORED);
        Fields {
            schema: builder.build(),
            id,
            id_high,
            id_low,
            group,
            title,
            description,
            category,
            seller,
            phase,
            start_time,
            end_time,
            created_at,
            price_cents,
            bid_count,
            auction,
            cover,
        }
    }

    /// The document of one auction of `group`, with the thumbnail of its first image.
    pub fn document(
        &self,
        group: u32,
        auction: &Auction,
        cover: Option<&ImageFile>,
    ) -> TantivyDocument {
        let id = id_key(auction.id.0);
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, auction.id.0.simple().to_string());
        doc.add_u64(self.id_high, (id >> 64) as u64);
        doc.add_u64(self.id_low, id as u64);
        doc.add_u64(self.group, u64::from(group));
        doc.add_text(self.title, &auction.title);
        doc.add_text(self.description, &auction.description);
        if let Some(category) = &auction.category {
            doc.add_facet(self.category, category_facet(category));
        }
        doc.add_text(self.seller, auction.seller_id.0.simple().to_string());
        doc.add_u64(self.phase, phase_code(auction.phase));
        doc.add_i64(self.start_time, auction.start_time);
        doc.add_i64(self.end_time, auction.end_time);
        doc.add_i64(self.created_at, auction.created_at);
        doc.add_i64(self.price_cents, display_price(auction).cents());
        doc.add_u64(self.bid_count, u64::from(auction.bid_count));
        doc.add_bytes(self.auction, &codec::encode(auction));
        if let Some(cover) = cover {
            doc.add_bytes(self.cover, &codec::encode(cover));
        }
        doc
    }
}

impl Default for Fields {
    fn default() -> Self {
        Fields::new()
    }
}

/// A category as a one-level facet (`/name`; a `/` inside the name is part of the name).
pub fn category_facet(category: &str) -> Facet {
    Facet::from_path([category])
}

/// The phase as the `phase` field stores it.
pub fn phase_code(phase: Phase) -> u64 {
    match phase {
        Phase::Open => 0,
        Phase::Sold => 1,
        Phase::Unsold => 2,
        Phase::Cancelled => 3,
    }
}
