//! The compact, versioned binary form of every stored value and every command.
//!
//! A value is one format-version byte followed by its `postcard` encoding (varints, no field
//! names), which is deterministic: equal values give equal bytes on every replica. A reader that
//! meets an unknown version refuses it instead of guessing, so a future format change adds a
//! version and a migration rather than silently misreading old data.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kv::StoreError;

/// The format version written by this build. 2: a group's state also keeps each auction's
/// event head and watcher count (`keys::AUCTION_EVENT_HEAD`, `keys::AUCTION_WATCH_COUNT`), which
/// state written by version 1 lacks, so version 1 data is refused rather than misread.
pub const FORMAT_VERSION: u8 = 2;

/// Encodes a value in the current format.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT_VERSION];
    // Serializing our own plain data types to a Vec cannot fail: no maps with non-string keys,
    // no sequences of unknown length. A failure would be a programming error.
    let body = postcard::to_allocvec(value).expect("postcard encoding of a state machine type");
    bytes.extend_from_slice(&body);
    bytes
}

/// Decodes a value; a corrupt or unknown-version value is a storage failure, not a rejection.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => postcard::from_bytes(body)
            .map_err(|error| StoreError(format!("corrupt stored value: {error}"))),
        Some((version, _)) => Err(StoreError(format!(
            "unknown stored format version {version}"
        ))),
        None => Err(StoreError("empty stored value".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_versions() -> Result<(), StoreError> {
        let value = (42u64, String::from("lot"), Some(-7i64));
        let bytes = encode(&value);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<(u64, String, Option<i64>)>(&bytes)?, value);
        let mut future = bytes.clone();
        future[0] = FORMAT_VERSION + 1;
        assert!(decode::<(u64, String, Option<i64>)>(&future).is_err());
        assert!(decode::<u64>(&[]).is_err());
        Ok(())
    }
}
