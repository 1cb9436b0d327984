//! Seed ranges (`0..500`, `0..=499`, `17`) and shards (`3/16`).

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// A non-empty, half-open range of seeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRange(pub Range<u64>);

impl SeedRange {
    pub fn len(&self) -> u64 {
        self.0.end - self.0.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Range<u64>> for SeedRange {
    fn from(r: Range<u64>) -> Self {
        SeedRange(r)
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.0.start, self.0.end)
    }
}

fn number(s: &str, whole: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("bad seed range `{whole}`: `{s}` is not a seed (a whole number ≥ 0)"))
}

impl FromStr for SeedRange {
    type Err = String;

    /// `A..B` (B excluded), `A..=B` (B included), or one seed `N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (start, end) = if let Some((a, b)) = s.split_once("..=") {
            let (a, b) = (number(a, s)?, number(b, s)?);
            let end = b
                .checked_add(1)
                .ok_or_else(|| format!("bad seed range `{s}`: end too large"))?;
            (a, end)
        } else if let Some((a, b)) = s.split_once("..") {
            (number(a, s)?, number(b, s)?)
        } else {
            let n = number(s, s)?;
            (n, n.saturating_add(1))
        };
        if start > end {
            return Err(format!(
                "bad seed range `{s}`: start {start} is after end {end}"
            ));
        }
        if start == end {
            return Err(format!("bad seed range `{s}`: it holds no seeds"));
        }
        Ok(SeedRange(start..end))
    }
}

/// Shard `index` of `count` (1-based): the seeds whose offset in the range is `index - 1` mod
/// `count`, so shards interleave and each sees seeds spread over the whole range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// How many seeds of `range` this shard holds, computed, not counted.
    pub fn len(self, range: &SeedRange) -> u64 {
        let offset = self.index - 1;
        let len = range.len();
        if len <= offset {
            0
        } else {
            (len - offset - 1) / self.count + 1
        }
    }

    /// The `k`-th seed of this shard (`k < self.len(range)`).
    pub fn nth(self, range: &SeedRange, k: u64) -> u64 {
        range.0.start + (self.index - 1) + k * self.count
    }

    /// This shard's seeds, in order, one at a time (a range of 2^64 seeds costs nothing up front).
    pub fn seeds(self, range: &SeedRange) -> impl Iterator<Item = u64> + '_ {
        (0..self.len(range)).map(move |k| self.nth(range, k))
    }
}

/// The seeds a sweep runs: a range, or one shard of it. Indexed arithmetically, so a sweep over
/// `0..2^64-1` split into a million shards starts at once and holds no list of seeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSet {
    range: SeedRange,
    shard: Shard,
}

impl SeedSet {
    pub fn new(range: SeedRange, shard: Option<Shard>) -> Self {
        SeedSet {
            range,
            shard: shard.unwrap_or(Shard { index: 1, count: 1 }),
        }
    }

    pub fn len(&self) -> u64 {
        self.shard.len(&self.range)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k`-th seed (`k < self.len()`).
    pub fn nth(&self, k: u64) -> u64 {
        self.shard.nth(&self.range, k)
    }

    pub fn first(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.nth(0))
    }

    /// Why this set cannot make a sweep, if it is empty.
    pub fn check_not_empty(&self) -> Result<(), String> {
        if self.is_empty() && self.shard.count == 1 {
            return Err(format!("seeds {} hold no seeds", self.range));
        }
        if self.is_empty() {
            return Err(format!(
                "shard {}/{} of seeds {} holds no seeds (the range has {} seed(s))",
                self.shard.index,
                self.shard.count,
                self.range,
                self.range.len()
            ));
        }
        Ok(())
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad shard `{s}`: expected I/N with 1 ≤ I ≤ N, e.g. 3/16");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        assert_eq!("0..500".parse::<SeedRange>().unwrap().0, 0..500);
        assert_eq!("3..=5".parse::<SeedRange>().unwrap().0, 3..6);
        assert_eq!("17".parse::<SeedRange>().unwrap().0, 17..18);
    }

    #[test]
    fn rejects_bad_ranges_readably() {
        let inverted = "9..3".parse::<SeedRange>().unwrap_err();
        assert_eq!(inverted, "bad seed range `9..3`: start 9 is after end 3");
        let junk = "abc".parse::<SeedRange>().unwrap_err();
        assert!(junk.contains("`abc` is not a seed"), "{junk}");
        assert!("5..5".parse::<SeedRange>().is_err());
        assert!("-1..4".parse::<SeedRange>().is_err());
    }

    #[test]
    fn shards_partition_the_range() {
        let range: SeedRange = "10..30".parse().unwrap();
        let mut all: Vec<u64> = (1..=3)
            .flat_map(|i| {
                Shard { index: i, count: 3 }
                    .seeds(&range)
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_unstable();
        assert_eq!(all, (10..30).collect::<Vec<_>>());
        let second: Vec<u64> = "2/3"
            .parse::<Shard>()
            .unwrap()
            .seeds(&range)
            .take(2)
            .collect();
        assert_eq!(second, [11, 14]);
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
    }

    #[test]
    fn shard_lengths_match_counting_for_every_small_case() {
        for start in 0..4u64 {
            for len in 1..12u64 {
                let range = SeedRange(start..start + len);
                for count in 1..8u64 {
                    for index in 1..=count {
                        let shard = Shard { index, count };
                        let counted = range
                            .0
                            .clone()
                            .filter(|s| (s - start) % count == index - 1)
                            .collect::<Vec<_>>();
                        assert_eq!(shard.seeds(&range).collect::<Vec<_>>(), counted);
                        assert_eq!(shard.len(&range), counted.len() as u64);
                    }
                }
            }
        }
    }

    #[test]
    fn the_whole_seed_space_is_indexed_without_listing_it() {
        let range: SeedRange = "0..18446744073709551615".parse().unwrap();
        let set = SeedSet::new(range, Some("1/1000000".parse().unwrap()));
        assert_eq!(set.len(), 18_446_744_073_710);
        assert_eq!(set.first(), Some(0));
        assert_eq!(set.nth(1), 1_000_000);
        assert_eq!(set.nth(set.len() - 1), 18_446_744_073_709_000_000);
        let empty = SeedSet::new(SeedRange(0..3), Some("5/10".parse().unwrap()));
        assert!(empty.is_empty());
        assert_eq!(
            empty.check_not_empty().unwrap_err(),
            "shard 5/10 of seeds 0..3 holds no seeds (the range has 3 seed(s))"
        );
    }
}
