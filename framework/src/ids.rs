//! Ids: random ones for what is created one at a time, ordered ones for
//! the documents a commit creates in bulk.
//!
//! Both are 32 lowercase hex digits, the form of Cozy's document ids, so a
//! Cozy app reads a Gleaner id as it reads its own and nothing downstream
//! (the store's columns, the web pages, exports) tells the two kinds apart.
//! They live here rather than in a store backend because every backend,
//! and code that is no store at all (run ids, account ids, request ids),
//! makes them the same way.

use chrono::{DateTime, Utc};

/// A new random id: 32 hex digits (a v4 UUID without hyphens, like Cozy's
/// document ids).
///
/// For anything created one at a time where order does not matter and
/// guessing must not be possible: run ids (which also name a run's staging
/// folder and the job that ran it), account ids (the CLI keeps their first
/// 12 digits), a document staged with an id before its commit, and the
/// random suffix of worker names.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Ids for the documents one commit creates: 32 hex digits like
/// [`new_id`]'s, but in order.
///
/// An id is the commit's time in milliseconds (12 digits), 12 random digits
/// (48 bits: two commits stamped with the same millisecond, as under a
/// test's fixed clock, still get their own ids), then a counter (8 digits).
///
/// Why ordered: documents are keyed by id in the store's primary key, and
/// random ids send every new row to a random page of that index. Ordered
/// ones go to its end, which is what makes a large first import (tens of
/// thousands of documents in one commit) fast.
#[derive(Debug, Clone)]
pub struct OrderedIds {
    prefix: String,
    next: u64,
}

impl OrderedIds {
    /// The ids of a commit made at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
        Self {
            prefix: format!("{ms:012x}{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff),
            next: 0,
        }
    }

    /// The next id, greater than every id this value gave before.
    pub fn next_id(&mut self) -> String {
        self.next += 1;
        let mut id = String::with_capacity(32);
        id.push_str(&self.prefix);
        // Eight hex digits by hand: `format!` costs more than the rest of
        // an insert's preparation.
        for shift in (0..8).rev() {
            let digit = (self.next >> (shift * 4)) & 0xf;
            id.push(char::from(b"0123456789abcdef"[digit as usize]));
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_id(id: &str) -> bool {
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn random_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert!(is_id(&a) && is_id(&b), "{a} {b}");
        assert_ne!(a, b);
    }

    #[test]
    fn ordered_ids_rise_within_a_commit_and_across_commits() {
        let t0 = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default();
        let t1 = DateTime::from_timestamp_millis(1_700_000_000_001).unwrap_or_default();
        let mut first = OrderedIds::new(t0);
        let ids: Vec<String> = (0..300).map(|_| first.next_id()).collect();
        assert!(ids.iter().all(|id| is_id(id)), "{ids:?}");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not rising");
        let later = OrderedIds::new(t1).next_id();
        assert!(
            ids.iter().all(|id| *id < later),
            "a later commit sorts after"
        );
        // Same millisecond: distinct prefixes, so no id is given twice.
        let mut again = OrderedIds::new(t0);
        assert!(!ids.contains(&again.next_id()));
    }
}
