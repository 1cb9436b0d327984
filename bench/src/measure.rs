//! Wall-clock sampling, outside any simulation: medians of repeated measurements.

use std::time::{Duration, Instant};

/// Runs `f` `samples` times and returns the median of what it reports.
pub fn median<T: PartialOrd + Copy>(samples: usize, mut f: impl FnMut() -> T) -> T {
    let mut values: Vec<T> = (0..samples.max(1)).map(|_| f()).collect();
    values.sort_by(|a, b| a.partial_cmp(b).expect("measurements are comparable"));
    values[values.len() / 2]
}

/// Wall time of one call of `f`, with its result.
pub fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// The median of measured values.
pub fn median_of(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "at least one sample");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
