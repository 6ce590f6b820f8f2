//! The set of batch sequence numbers seen in one stream, as a sorted list of disjoint,
//! non-adjacent ranges: memory grows with the number of holes, not with the number of batches.
//! Holes are bounded too ([`MAX_RANGES`]): past that, the two lowest ranges are joined and the
//! hole between them is forgotten (its seqs still count as missing, but one arriving later is
//! taken for a repeat). That needs more than a thousand holes in one run of one device.

/// Most ranges kept per set.
pub const MAX_RANGES: usize = 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqSet {
    /// Sorted, disjoint and non-adjacent inclusive ranges.
    ranges: Vec<(u32, u32)>,
    /// Distinct seqs actually inserted (not counting forgotten holes).
    distinct: u64,
}

impl SeqSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `seq`; false if it was already there (a repeat).
    pub fn insert(&mut self, seq: u32) -> bool {
        // The first range starting after `seq`; the one before it may hold `seq`.
        let next = self.ranges.partition_point(|&(start, _)| start <= seq);
        let joins_prev = match next.checked_sub(1).map(|i| self.ranges[i]) {
            Some((_, end)) if end >= seq => return false,
            Some((_, end)) => end + 1 == seq,
            None => false,
        };
        let joins_next = self
            .ranges
            .get(next)
            .is_some_and(|&(start, _)| seq.checked_add(1) == Some(start));
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[next - 1].1 = self.ranges[next].1;
                self.ranges.remove(next);
            }
            (true, false) => self.ranges[next - 1].1 = seq,
            (false, true) => self.ranges[next].0 = seq,
            (false, false) => self.ranges.insert(next, (seq, seq)),
        }
        self.distinct += 1;
        if self.ranges.len() > MAX_RANGES {
            let (_, end) = self.ranges.remove(1);
            self.ranges[0].1 = end;
        }
        true
    }

    /// Whether `seq` was seen (or lies in a forgotten hole).
    pub fn contains(&self, seq: u32) -> bool {
        let next = self.ranges.partition_point(|&(start, _)| start <= seq);
        next > 0 && self.ranges[next - 1].1 >= seq
    }

    pub fn min(&self) -> Option<u32> {
        self.ranges.first().map(|r| r.0)
    }

    pub fn max(&self) -> Option<u32> {
        self.ranges.last().map(|r| r.1)
    }

    /// Distinct seqs inserted.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// Seqs between the lowest and the highest seen that never arrived.
    pub fn missing(&self) -> u64 {
        match (self.min(), self.max()) {
            (Some(lo), Some(hi)) => u64::from(hi - lo) + 1 - self.distinct,
            _ => 0,
        }
    }

    /// The ranges, lowest first.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(seqs: &[u32]) -> SeqSet {
        let mut s = SeqSet::new();
        for &q in seqs {
            s.insert(q);
        }
        s
    }

    #[test]
    fn ranges_merge_and_split_as_seqs_arrive() {
        let mut s = SeqSet::new();
        assert_eq!((s.min(), s.max(), s.missing()), (None, None, 0));
        assert!(s.insert(5));
        assert!(s.insert(7));
        assert_eq!(s.ranges(), &[(5, 5), (7, 7)]);
        assert_eq!(s.missing(), 1);
        assert!(s.insert(6), "fills the hole, joining both sides");
        assert_eq!(s.ranges(), &[(5, 7)]);
        assert!(!s.insert(6), "a repeat");
        assert!(s.insert(4));
        assert!(s.insert(8));
        assert!(s.insert(10));
        assert!(s.insert(0));
        assert_eq!(s.ranges(), &[(0, 0), (4, 8), (10, 10)]);
        assert_eq!((s.distinct(), s.missing()), (7, 4));
        for q in [0, 4, 8, 10] {
            assert!(s.contains(q) && !s.insert(q), "{q}");
        }
        for q in [1, 3, 9, 11] {
            assert!(!s.contains(q), "{q}");
        }
        assert!(s.insert(u32::MAX));
        assert!(!s.insert(u32::MAX));
        assert_eq!(s.max(), Some(u32::MAX));
    }

    #[test]
    fn out_of_order_arrivals_give_the_same_set() {
        let a = set(&[0, 1, 2, 3, 4, 5]);
        let b = set(&[5, 3, 1, 0, 2, 4]);
        assert_eq!(a, b);
        assert_eq!(a.ranges(), &[(0, 5)]);
    }

    #[test]
    fn holes_are_bounded() {
        let mut s = SeqSet::new();
        for i in 0..(MAX_RANGES as u32 + 10) {
            assert!(s.insert(i * 2));
        }
        assert_eq!(s.ranges().len(), MAX_RANGES);
        assert_eq!(s.distinct(), MAX_RANGES as u64 + 10);
        // 10 holes were forgotten but still count as missing.
        assert_eq!(s.missing(), MAX_RANGES as u64 + 9);
        assert!(s.contains(1), "a forgotten hole reads as seen");
        assert!(!s.contains(2 * (MAX_RANGES as u32) + 1));
    }
}
