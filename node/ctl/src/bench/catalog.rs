//! What the generated auctions look like to search, and the searches the `search` operation
//! sends.
//!
//! Auction `i` gets a title of three words of a small vocabulary (an adjective, a material, a
//! thing: "vintage walnut telescope #17"), a description with a fourth and a category of
//! [`CATEGORIES`], all picked by a hash of `i`, so every run and every node agrees on them
//! and each word matches a few percent of the auctions, like a real catalogue's common words.
//! A search ([`pick_search`]) asks for one or two of those words (now and then with one
//! letter wrong, to exercise typo tolerance), sometimes no words at all, with a category or
//! price filter and a sort now and then.
//!
//! Pure: the picks take the caller's seeded generator.

use rand::Rng;

const ADJECTIVES: [&str; 16] = [
    "vintage",
    "antique",
    "restored",
    "handmade",
    "rare",
    "signed",
    "classic",
    "miniature",
    "polished",
    "carved",
    "painted",
    "original",
    "boxed",
    "folding",
    "enamel",
    "gilded",
];
const MATERIALS: [&str; 8] = [
    "oak",
    "walnut",
    "copper",
    "bronze",
    "leather",
    "glass",
    "porcelain",
    "steel",
];
const THINGS: [&str; 32] = [
    "telescope",
    "camera",
    "guitar",
    "violin",
    "lantern",
    "compass",
    "clock",
    "typewriter",
    "bicycle",
    "kettle",
    "teapot",
    "mirror",
    "chair",
    "lamp",
    "radio",
    "watch",
    "globe",
    "sextant",
    "microscope",
    "gramophone",
    "trumpet",
    "saxophone",
    "painting",
    "sculpture",
    "vase",
    "rug",
    "quilt",
    "desk",
    "bookcase",
    "helmet",
    "sword",
    "coin",
];
const CONDITIONS: [&str; 4] = ["mint", "excellent", "good", "worn"];
/// The categories of the generated auctions.
pub const CATEGORIES: [&str; 8] = [
    "collectibles",
    "music",
    "optics",
    "furniture",
    "art",
    "kitchen",
    "clocks",
    "sports",
];
const SORTS: [&str; 6] = [
    "relevance",
    "ending_soon",
    "newest",
    "price_asc",
    "price_desc",
    "most_bids",
];
/// Results asked for by one search.
const SEARCH_LIMIT: u32 = 20;
/// Words of at least this many letters may be sent with a typo (the index forgives one from
/// five letters).
const TYPO_CHARS_MIN: usize = 5;

/// SplitMix64's finalizer: spreads consecutive indexes over all bits.
fn mix(index: usize) -> u64 {
    let mut z = (index as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick_by<'a>(words: &[&'a str], bits: u64) -> &'a str {
    words[(bits % words.len() as u64) as usize]
}

/// The title, description and category of auction `index` of run `run`.
pub fn listing(run: &str, index: usize) -> (String, String, &'static str) {
    let bits = mix(index);
    let adjective = pick_by(&ADJECTIVES, bits);
    let material = pick_by(&MATERIALS, bits >> 8);
    let thing = pick_by(&THINGS, bits >> 16);
    let condition = pick_by(&CONDITIONS, bits >> 24);
    let category = pick_by(&CATEGORIES, bits >> 32);
    (
        format!("{adjective} {material} {thing} #{index}"),
        format!("{material} {thing} in {condition} condition; bench run {run}, made by auctionctl bench"),
        category,
    )
}

/// `word` with one letter (not the first) replaced: one typo.
fn with_typo(word: &str, rng: &mut impl Rng) -> String {
    let mut letters: Vec<char> = word.chars().collect();
    let at = rng.random_range(1..letters.len());
    letters[at] = if letters[at] == 'x' { 'q' } else { 'x' };
    letters.into_iter().collect()
}

fn any_word(rng: &mut impl Rng) -> &'static str {
    match rng.random_range(0..4) {
        0 => ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
        1 => MATERIALS[rng.random_range(0..MATERIALS.len())],
        _ => THINGS[rng.random_range(0..THINGS.len())],
    }
}

/// The path and query of one search: `/api/v1/search?q=…&…`.
pub fn pick_search(rng: &mut impl Rng) -> String {
    let mut words: Vec<String> = match rng.random_range(0..10) {
        0 => Vec::new(),
        1 | 2 => vec![
            ADJECTIVES[rng.random_range(0..ADJECTIVES.len())].to_owned(),
            THINGS[rng.random_range(0..THINGS.len())].to_owned(),
        ],
        _ => vec![any_word(rng).to_owned()],
    };
    if let Some(word) = words.last_mut() {
        if word.len() >= TYPO_CHARS_MIN && rng.random_bool(0.15) {
            *word = with_typo(word, rng);
        }
    }
    let mut query = vec![format!("limit={SEARCH_LIMIT}")];
    if !words.is_empty() {
        query.push(format!("q={}", words.join("+")));
    }
    if rng.random_bool(0.25) {
        query.push(format!(
            "category={}",
            CATEGORIES[rng.random_range(0..CATEGORIES.len())]
        ));
    }
    if rng.random_bool(0.15) {
        query.push("minPrice=10.00&maxPrice=50.00".to_owned());
    }
    if rng.random_bool(0.5) {
        query.push(format!("sort={}", SORTS[rng.random_range(0..SORTS.len())]));
    }
    format!("/api/v1/search?{}", query.join("&"))
}

/// A listing page: active auctions of one category.
pub fn pick_listing(rng: &mut impl Rng, limit: u32) -> String {
    let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
    format!("/api/v1/auctions?status=active&category={category}&limit={limit}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn listings_are_fixed_by_the_index_and_spread_over_the_vocabulary() {
        assert_eq!(listing("r", 5), listing("r", 5));
        let (title, description, _) = listing("r1", 5);
        assert!(title.ends_with(" #5"), "{title}");
        assert!(description.contains("r1"), "{description}");
        let mut things = BTreeMap::new();
        let mut categories = BTreeMap::new();
        let count = 32_000;
        for index in 0..count {
            let (title, _, category) = listing("r", index);
            let thing = title.split(' ').nth(2).expect("three words").to_owned();
            *things.entry(thing).or_insert(0u32) += 1;
            *categories.entry(category).or_insert(0u32) += 1;
        }
        assert_eq!(things.len(), THINGS.len());
        assert_eq!(categories.len(), CATEGORIES.len());
        // Each thing is in about 1/32 of the titles.
        let expected = count as u32 / THINGS.len() as u32;
        assert!(
            things
                .values()
                .all(|seen| seen.abs_diff(expected) < expected / 5),
            "{things:?}"
        );
    }

    #[test]
    fn a_typo_changes_one_letter_after_the_first() {
        let mut rng = StdRng::seed_from_u64(3);
        for word in ["telescope", "oak", "xylophone"] {
            for _ in 0..20 {
                let typo = with_typo(word, &mut rng);
                let changed = word.chars().zip(typo.chars()).filter(|(a, b)| a != b);
                assert_eq!(changed.count(), 1, "{word} -> {typo}");
                assert_eq!(typo.chars().next(), word.chars().next());
                assert_eq!(typo.len(), word.len());
            }
        }
    }

    #[test]
    fn searches_use_every_parameter_and_only_known_values() {
        let mut rng = StdRng::seed_from_u64(9);
        let searches: Vec<String> = (0..2_000).map(|_| pick_search(&mut rng)).collect();
        for part in [
            "q=",
            "category=",
            "minPrice=",
            "sort=most_bids",
            "sort=ending_soon",
        ] {
            assert!(
                searches.iter().any(|search| search.contains(part)),
                "{part}"
            );
        }
        assert!(searches.iter().any(|search| !search.contains("q=")));
        for search in &searches {
            let query = search.strip_prefix("/api/v1/search?").expect("search path");
            for pair in query.split('&') {
                let (name, value) = pair.split_once('=').expect("name=value");
                assert!(!value.is_empty(), "{search}");
                match name {
                    "category" => assert!(CATEGORIES.contains(&value)),
                    "sort" => assert!(SORTS.contains(&value)),
                    "q" => assert!(value
                        .split('+')
                        .all(|word| word.chars().all(|c| c.is_ascii_lowercase()))),
                    "limit" | "minPrice" | "maxPrice" => {}
                    other => panic!("unknown parameter {other} in {search}"),
                }
            }
        }
    }
}
