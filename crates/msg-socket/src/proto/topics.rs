//! Topic subscriptions (prefix matching) and sequence gap counting.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

/// The prefixes one subscriber asked for, with how many times each was
/// subscribed (an unsubscribe undoes one subscribe, as in ZeroMQ).
///
/// A subscriber uses the counts ([`subscribe`](Self::subscribe),
/// [`unsubscribe`](Self::unsubscribe)) and tells its publishers only about
/// the first subscribe and the last unsubscribe of a prefix; a publisher
/// keeps a plain set ([`insert`](Self::insert), [`remove`](Self::remove)).
#[derive(Debug, Default, Clone)]
pub(crate) struct TopicSet {
    prefixes: BTreeMap<Bytes, usize>,
    /// Total length of the distinct prefixes.
    bytes: usize,
}

impl TopicSet {
    /// Adds one subscription to `prefix` (the empty prefix matches
    /// everything); returns whether this is the first, i.e. whether the
    /// publisher must be told.
    pub(crate) fn subscribe(&mut self, prefix: Bytes) -> bool {
        let len = prefix.len();
        let n = self.prefixes.entry(prefix).or_insert(0);
        *n += 1;
        let first = *n == 1;
        if first {
            self.bytes += len;
        }
        first
    }

    /// Removes one subscription to `prefix`; returns whether it was the
    /// last, i.e. whether the publisher must be told.
    pub(crate) fn unsubscribe(&mut self, prefix: &[u8]) -> bool {
        match self.prefixes.get_mut(prefix) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.prefixes.remove(prefix);
                self.bytes -= prefix.len();
                true
            }
            None => false,
        }
    }

    /// Whether some subscribed prefix starts `topic`.
    pub(crate) fn matches(&self, topic: &[u8]) -> bool {
        // The empty prefix (everything) sorts first; finding it is a walk
        // down the tree's left edge, with no key comparison. It is the
        // common subscription, and a publisher asks this once per message
        // and subscriber.
        if self.prefixes.keys().next().is_some_and(|p| p.is_empty()) {
            return true;
        }
        // Only keys that sort at or before the topic can be prefixes of it;
        // walk those from the closest one down. Every prefix of `topic`
        // sorts before it, so for few subscriptions this is a short scan.
        self.prefixes
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(topic)))
            .rev()
            .any(|(p, _)| topic.starts_with(p))
    }

    /// Adds `prefix` if absent (set semantics, used by publishers); returns
    /// whether it was added.
    pub(crate) fn insert(&mut self, prefix: Bytes) -> bool {
        if self.prefixes.contains_key(&prefix) {
            return false;
        }
        self.bytes += prefix.len();
        self.prefixes.insert(prefix, 1);
        true
    }

    /// Removes `prefix` whatever its count; returns whether it was there.
    pub(crate) fn remove(&mut self, prefix: &[u8]) -> bool {
        let removed = self.prefixes.remove(prefix).is_some();
        if removed {
            self.bytes -= prefix.len();
        }
        removed
    }

    /// Whether `prefix` itself (not merely a prefix of it) is in the set.
    pub(crate) fn contains(&self, prefix: &[u8]) -> bool {
        self.prefixes.contains_key(prefix)
    }

    /// Total length in bytes of the distinct prefixes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of distinct prefixes.
    pub(crate) fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Distinct prefixes, in order.
    pub(crate) fn prefixes(&self) -> impl Iterator<Item = &Bytes> {
        self.prefixes.keys()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}

/// How many sequence numbers were skipped between the last one seen on a
/// connection (`0` before the first) and `seq`. Publishers number each
/// subscriber's messages 1, 2, 3, ... per connection; a number that does not
/// go up (which a correct publisher never sends) counts as no gap.
pub(crate) fn gap(last: u64, seq: u64) -> u64 {
    if seq > last { seq - last - 1 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(prefixes: &[&'static str]) -> TopicSet {
        let mut s = TopicSet::default();
        for p in prefixes {
            s.subscribe(Bytes::from_static(p.as_bytes()));
        }
        s
    }

    #[test]
    fn prefix_matching() {
        let s = set(&["price.", "news"]);
        assert!(s.matches(b"price.btc"));
        assert!(s.matches(b"news"));
        assert!(s.matches(b"newsflash"));
        assert!(!s.matches(b"pric"));
        assert!(!s.matches(b"sport"));
        assert!(!TopicSet::default().matches(b"anything"));
        assert!(set(&[""]).matches(b"anything"));
    }

    #[test]
    fn matching_agrees_with_a_plain_scan() {
        let prefixes = ["a", "ab", "abc", "b", "ba", "c", "zz", "m"];
        let s = set(&prefixes);
        for topic in [
            "", "a", "abd", "abcz", "b", "bz", "c", "d", "zzz", "z", "mm", "l",
        ] {
            let expect = prefixes.iter().any(|p| topic.starts_with(p));
            assert_eq!(s.matches(topic.as_bytes()), expect, "topic {topic:?}");
        }
    }

    #[test]
    fn unsubscribe_undoes_one_subscribe() {
        let mut s = TopicSet::default();
        assert!(
            s.subscribe(Bytes::from_static(b"x")),
            "first tells the publisher"
        );
        assert!(!s.subscribe(Bytes::from_static(b"x")), "second does not");
        assert!(!s.unsubscribe(b"x"), "one left");
        assert!(s.matches(b"xy"));
        assert!(s.unsubscribe(b"x"), "last tells the publisher");
        assert!(!s.matches(b"xy"));
        assert!(!s.unsubscribe(b"x"));
        assert!(s.is_empty());
    }

    #[test]
    fn set_semantics_for_publishers() {
        let mut s = TopicSet::default();
        assert!(s.insert(Bytes::from_static(b"a")));
        assert!(!s.insert(Bytes::from_static(b"a")));
        assert_eq!(s.len(), 1);
        assert!(s.contains(b"a"));
        assert!(!s.contains(b""));
        assert!(s.remove(b"a"));
        assert!(!s.remove(b"a"));
        assert!(s.is_empty());
    }

    #[test]
    fn bytes_count_distinct_prefixes() {
        let mut s = TopicSet::default();
        s.subscribe(Bytes::from_static(b"abc"));
        s.subscribe(Bytes::from_static(b"abc"));
        s.subscribe(Bytes::from_static(b"de"));
        assert_eq!(s.bytes(), 5, "a prefix subscribed twice counts once");
        s.unsubscribe(b"abc");
        assert_eq!(s.bytes(), 5);
        s.unsubscribe(b"abc");
        assert_eq!(s.bytes(), 2);
        s.unsubscribe(b"zz");
        assert_eq!(s.bytes(), 2);

        let mut p = TopicSet::default();
        p.insert(Bytes::from_static(b"xyz"));
        p.insert(Bytes::from_static(b"xyz"));
        assert_eq!(p.bytes(), 3);
        p.remove(b"nope");
        assert_eq!(p.bytes(), 3);
        p.remove(b"xyz");
        assert_eq!(p.bytes(), 0);
    }

    #[test]
    fn gaps_are_counted() {
        assert_eq!(gap(0, 1), 0);
        assert_eq!(gap(1, 2), 0);
        assert_eq!(gap(2, 5), 2);
        assert_eq!(gap(0, 4), 3, "the first three never arrived");
        assert_eq!(gap(5, 5), 0);
        assert_eq!(gap(5, 1), 0);
    }
}
