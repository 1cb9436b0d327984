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
    pub fn seeds(self, range: &SeedRange) -> Vec<u64> {
        range
            .0
            .clone()
            .filter(|s| (s - range.0.start) % self.count == self.index - 1)
            .collect()
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
            .flat_map(|i| Shard { index: i, count: 3 }.seeds(&range))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (10..30).collect::<Vec<_>>());
        assert_eq!("2/3".parse::<Shard>().unwrap().seeds(&range)[..2], [11, 14]);
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
    }
}
