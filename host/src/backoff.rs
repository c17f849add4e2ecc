//! Retry delays shared by bot runs and deliveries: doubling from a first
//! delay, capped.

/// The delay before the next try after `failures` failed tries (1 or
/// more): `first_ms`, doubled per further failure, at most `cap_ms`.
pub fn delay_ms(first_ms: u64, failures: i64, cap_ms: i64) -> i64 {
    let doublings = (failures - 1).clamp(0, 20);
    (first_ms as i64).saturating_mul(1 << doublings).min(cap_ms)
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles_then_caps() {
        let d: Vec<i64> = (1..=6).map(|n| super::delay_ms(100, n, 1000)).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(super::delay_ms(u64::MAX / 2, 60, i64::MAX), i64::MAX);
    }
}
