//! The figures every report shares: whole seconds between two times as the
//! tickets show them, nearest-rank percentiles, means rounded half up to
//! 0.1 s and shares rounded half up to 3 decimals, in integer arithmetic so
//! that a half is never lost to floating point.

use luot_protocol::Stats;

use crate::engine::Millis;

/// Whole seconds of a time in ms, as a ticket prints it (truncated).
fn secs(ms: Millis) -> i64 {
    ms.div_euclid(1000)
}

/// Seconds from `from` to `to`, both taken as tickets show them.
pub(super) fn span(from: Millis, to: Millis) -> i64 {
    secs(to) - secs(from)
}

/// `sum / n` rounded half up to one decimal; n > 0.
pub(super) fn tenths(sum: i64, n: usize) -> f64 {
    let n = n as i128;
    let q = (20 * i128::from(sum) + n).div_euclid(2 * n);
    q as f64 / 10.0
}

/// `part / whole` rounded half up to 3 decimals; null when `whole` is 0.
pub(super) fn share(part: u32, whole: u32) -> Option<f64> {
    if whole == 0 {
        return None;
    }
    let (p, w) = (u64::from(part), u64::from(whole));
    Some(((2000 * p + w) / (2 * w)) as f64 / 1000.0)
}

/// Mean, p50 and p90 (nearest rank) of `v`; all null when it is empty.
pub(super) fn stats(v: &mut [i64]) -> Stats {
    if v.is_empty() {
        return Stats::default();
    }
    v.sort_unstable();
    let n = v.len();
    // Nearest rank: the value at rank ceil(p/100 × n), from 1.
    let rank = |p: usize| v[(p * n).div_ceil(100).clamp(1, n) - 1] as f64;
    Stats {
        mean: Some(tenths(v.iter().sum(), n)),
        p50: Some(rank(50)),
        p90: Some(rank(90)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<i64> = (1..=10).collect();
        let s = stats(&mut v);
        assert_eq!(s.p50, Some(5.0));
        assert_eq!(s.p90, Some(9.0));
        assert_eq!(s.mean, Some(5.5));
        let mut one = vec![7];
        assert_eq!(stats(&mut one).p90, Some(7.0));
        assert_eq!(stats(&mut []).mean, None);
        // Unsorted input, 11 values: rank ceil(5.5) = 6, ceil(9.9) = 10.
        let mut v = vec![110, 10, 100, 20, 90, 30, 80, 40, 70, 50, 60];
        let s = stats(&mut v);
        assert_eq!((s.p50, s.p90), (Some(60.0), Some(100.0)));
    }

    #[test]
    fn means_and_shares_round_half_up() {
        assert_eq!(tenths(1, 20), 0.1, "0.05 goes up");
        assert_eq!(tenths(1, 3), 0.3);
        assert_eq!(tenths(2, 3), 0.7);
        assert_eq!(tenths(-1, 20), 0.0, "-0.05 goes up too");
        assert_eq!(share(2, 3), Some(0.667));
        assert_eq!(share(1, 8), Some(0.125));
        assert_eq!(share(1, 16), Some(0.063), "0.0625 goes up");
        assert_eq!(share(1, 2000), Some(0.001), "0.0005 goes up");
        assert_eq!(share(1, 2001), Some(0.0));
        assert_eq!(share(3, 3), Some(1.0));
        assert_eq!(share(0, 0), None);
    }

    #[test]
    fn spans_are_whole_seconds_as_printed() {
        // 07:00:00.900 to 07:00:01.100 prints as one second apart.
        assert_eq!(span(900, 1_100), 1);
        assert_eq!(span(1_000, 1_999), 0);
    }
}
