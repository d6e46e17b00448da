//! The small key-value contract the state machine runs on, and its in-memory implementations.
//!
//! One group's state is a set of byte keys in lexicographic order. The state machine needs only
//! point reads, writes, deletes and an ordered, bounded scan over a prefix. Production runs it on
//! RocksDB (the `raft` crate, one key range per group); tests and the simulator run it on
//! [`MemKv`]. [`Overlay`] buffers the writes of one or more commands over any reader so they can
//! be committed in one atomic batch together with the applied log id.
//!
//! Not here: durability, snapshots, multi-group key prefixes (the storage layer owns those).

use std::collections::BTreeMap;
use std::ops::Bound;

use thiserror::Error;

/// A storage failure. Unlike a domain rejection it is not deterministic: the caller must not
/// treat the command as applied (the Raft layer stops the group rather than diverge).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("storage failure: {0}")]
pub struct StoreError(pub String);

/// One key-value pair as returned by a scan.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Read access to one group's state.
pub trait KvRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` pairs whose key starts with `prefix`, in ascending key order, starting
    /// strictly after `after` when given.
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError>;
}

/// Write access to one group's state.
pub trait KvStore: KvRead {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError>;
}

impl<T: KvRead + ?Sized> KvRead for &T {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        (**self).scan(prefix, after, limit)
    }
}

impl<T: KvRead + ?Sized> KvRead for &mut T {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        (**self).scan(prefix, after, limit)
    }
}

impl<T: KvStore + ?Sized> KvStore for &mut T {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        (**self).put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        (**self).delete(key)
    }
}

/// The lower scan bound: strictly after `after` when it is inside the prefix, else the prefix.
fn scan_start<'a>(prefix: &'a [u8], after: Option<&'a [u8]>) -> Bound<&'a [u8]> {
    match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

/// An ordered in-memory map: the reference store for tests, benchmarks and the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemKv {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemKv {
    pub fn new() -> MemKv {
        MemKv::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every pair in key order; two replicas with equal dumps have byte-identical state.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.map.iter()
    }
}

impl KvRead for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.get(key).cloned())
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        let range = self
            .map
            .range::<[u8], _>((scan_start(prefix, after), Bound::Unbounded));
        Ok(range
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}

impl KvStore for MemKv {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.map.remove(key);
        Ok(())
    }
}

/// A pending write: `Some(value)` to put, `None` to delete.
pub type Write = Option<Vec<u8>>;

/// Buffers writes over a base reader; reads see the buffered writes first.
///
/// The storage layer applies a batch of log entries on one overlay, then commits
/// [`Overlay::into_writes`] atomically with the applied log id.
pub struct Overlay<R> {
    base: R,
    writes: BTreeMap<Vec<u8>, Write>,
}

impl<R: KvRead> Overlay<R> {
    pub fn new(base: R) -> Overlay<R> {
        Overlay {
            base,
            writes: BTreeMap::new(),
        }
    }

    /// The buffered writes in key order.
    pub fn into_writes(self) -> BTreeMap<Vec<u8>, Write> {
        self.writes
    }

    pub fn pending_writes(&self) -> usize {
        self.writes.len()
    }

    /// Buffered pairs under `prefix` after the start bound, deletes included, up to `limit`
    /// live ones (deletes do not count against the limit but must be seen to mask the base).
    fn buffered<'a>(
        &'a self,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Write)> {
        self.writes
            .range::<[u8], _>((scan_start(prefix, after), Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix))
    }
}

impl<R: KvRead> KvRead for Overlay<R> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(write) => Ok(write.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        // Deleted buffered keys can hide base keys, so read enough of the base to still fill
        // `limit` after masking: at most `limit` plus every buffered key in range.
        let buffered: Vec<_> = self.buffered(prefix, after).collect();
        let base_limit = limit.saturating_add(buffered.len());
        let base = self.base.scan(prefix, after, base_limit)?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
        for (key, write) in buffered {
            match write {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }
}

impl<R: KvRead> KvStore for Overlay<R> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.writes.insert(key.to_vec(), None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: Vec<Pair>) -> Vec<Vec<u8>> {
        pairs.into_iter().map(|(key, _)| key).collect()
    }

    #[test]
    fn scan_respects_prefix_after_and_limit() -> Result<(), StoreError> {
        let mut kv = MemKv::new();
        for key in [&b"a1"[..], b"b1", b"b2", b"b3", b"c1"] {
            kv.put(key, b"v")?;
        }
        assert_eq!(
            keys(kv.scan(b"b", None, 10)?),
            vec![b"b1".to_vec(), b"b2".to_vec(), b"b3".to_vec()]
        );
        assert_eq!(keys(kv.scan(b"b", Some(b"b1"), 1)?), vec![b"b2".to_vec()]);
        assert_eq!(keys(kv.scan(b"b", Some(b"a9"), 1)?), vec![b"b1".to_vec()]);
        assert!(kv.scan(b"d", None, 10)?.is_empty());
        Ok(())
    }

    #[test]
    fn overlay_masks_deletes_and_merges_puts_in_order() -> Result<(), StoreError> {
        let mut base = MemKv::new();
        for key in [&b"k1"[..], b"k2", b"k3", b"k4"] {
            base.put(key, b"base")?;
        }
        let mut overlay = Overlay::new(&base);
        overlay.delete(b"k1")?;
        overlay.delete(b"k2")?;
        overlay.put(b"k25", b"new")?;
        assert_eq!(overlay.get(b"k1")?, None);
        assert_eq!(overlay.get(b"k3")?, Some(b"base".to_vec()));
        let scanned = overlay.scan(b"k", None, 2)?;
        assert_eq!(
            scanned,
            vec![
                (b"k25".to_vec(), b"new".to_vec()),
                (b"k3".to_vec(), b"base".to_vec())
            ]
        );
        let writes = overlay.into_writes();
        assert_eq!(writes.len(), 3);
        Ok(())
    }
}
