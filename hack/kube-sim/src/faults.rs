//! Seeded, reproducible fault injection: failed writes (500 or 409), added latency and cut
//! watch streams. A [`Faults`] handle is shared with the running server and can be changed
//! at any time, so a test can turn faults on for one phase only.
//!
//! Every decision draws from one SplitMix64 generator seeded by [`FaultConfig::seed`]: the
//! same configuration and the same order of requests give the same faults.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What to inject. The default injects nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Seed of the random decisions.
    pub seed: u64,
    /// Fraction (0.0–1.0) of writes (POST, PUT, PATCH, DELETE) answered with
    /// 500 InternalError without being carried out.
    pub write_error_rate: f64,
    /// Fraction (0.0–1.0) of writes answered with 409 Conflict without being carried out.
    pub write_conflict_rate: f64,
    /// Delay added before every API request is served.
    pub latency: Duration,
    /// Extra random delay, uniform in `0..=latency_jitter`.
    pub latency_jitter: Duration,
    /// End every watch stream after this many events (its client must re-watch).
    pub watch_cut_after: Option<u64>,
    /// Probability (0.0–1.0) of ending a watch stream after each event.
    pub watch_cut_rate: f64,
    /// Plural resource names the faults apply to (`taskruns`); empty means all.
    pub resources: Vec<String>,
}

impl FaultConfig {
    /// Whether this configuration injects anything at all.
    pub fn is_active(&self) -> bool {
        self.write_error_rate > 0.0
            || self.write_conflict_rate > 0.0
            || !self.latency.is_zero()
            || !self.latency_jitter.is_zero()
            || self.watch_cut_after.is_some()
            || self.watch_cut_rate > 0.0
    }

    fn applies_to(&self, resource: &str) -> bool {
        self.resources.is_empty() || self.resources.iter().any(|r| r == resource)
    }
}

/// Counts of injected faults, so tests can check the faults really happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Writes answered with 500.
    pub write_errors: u64,
    /// Writes answered with 409.
    pub write_conflicts: u64,
    /// Requests delayed.
    pub delayed_requests: u64,
    /// Watch streams cut.
    pub watches_cut: u64,
}

/// A write fault to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// 500 InternalError.
    InternalError,
    /// 409 Conflict.
    Conflict,
}

/// SplitMix64: tiny, fast, and its sequence never changes with a dependency upgrade.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
struct State {
    config: FaultConfig,
    rng: SplitMix64,
    stats: FaultStats,
}

/// Shared, runtime-adjustable fault injection handle.
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<Mutex<State>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultConfig::default())
    }
}

impl Faults {
    /// A handle starting with `config`.
    pub fn new(config: FaultConfig) -> Self {
        let rng = SplitMix64(config.seed);
        Faults {
            inner: Arc::new(Mutex::new(State {
                config,
                rng,
                stats: FaultStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the configuration and restarts the random sequence from its seed.
    pub fn set(&self, config: FaultConfig) {
        let mut st = self.lock();
        st.rng = SplitMix64(config.seed);
        st.config = config;
    }

    /// Changes the configuration in place (the random sequence continues).
    pub fn update(&self, edit: impl FnOnce(&mut FaultConfig)) {
        edit(&mut self.lock().config);
    }

    /// Turns every fault off.
    pub fn clear(&self) {
        self.set(FaultConfig::default());
    }

    /// The current configuration.
    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// How many faults were injected so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    /// Decides whether a write to `resource` fails.
    pub fn on_write(&self, resource: &str) -> Option<WriteFault> {
        let mut st = self.lock();
        let c = &st.config;
        if !c.applies_to(resource) || (c.write_error_rate <= 0.0 && c.write_conflict_rate <= 0.0) {
            return None;
        }
        let (err, conflict) = (c.write_error_rate, c.write_conflict_rate);
        let x = st.rng.next_f64();
        if x < err {
            st.stats.write_errors += 1;
            Some(WriteFault::InternalError)
        } else if x < err + conflict {
            st.stats.write_conflicts += 1;
            Some(WriteFault::Conflict)
        } else {
            None
        }
    }

    /// The delay to add before serving a request for `resource` (None for no delay).
    pub fn delay(&self, resource: &str) -> Option<Duration> {
        let mut st = self.lock();
        let c = &st.config;
        if !c.applies_to(resource) || (c.latency.is_zero() && c.latency_jitter.is_zero()) {
            return None;
        }
        let (base, jitter) = (c.latency, c.latency_jitter);
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            jitter.mul_f64(st.rng.next_f64())
        };
        st.stats.delayed_requests += 1;
        Some(base + extra)
    }

    /// Decides, after a watch stream on `resource` sent its `sent`-th event, whether to cut it.
    pub fn cut_watch(&self, resource: &str, sent: u64) -> bool {
        let mut st = self.lock();
        let c = &st.config;
        if !c.applies_to(resource) {
            return false;
        }
        let by_count = c.watch_cut_after.is_some_and(|n| sent >= n);
        let rate = c.watch_cut_rate;
        let by_chance = rate > 0.0 && st.rng.next_f64() < rate;
        if by_count || by_chance {
            st.stats.watches_cut += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decisions(seed: u64) -> Vec<Option<WriteFault>> {
        let f = Faults::new(FaultConfig {
            seed,
            write_error_rate: 0.3,
            write_conflict_rate: 0.2,
            ..Default::default()
        });
        (0..200).map(|_| f.on_write("taskruns")).collect()
    }

    #[test]
    fn same_seed_same_faults() {
        assert_eq!(decisions(7), decisions(7));
        assert_ne!(decisions(7), decisions(8));
    }

    #[test]
    fn rates_are_roughly_honoured_and_counted() {
        let f = Faults::new(FaultConfig {
            seed: 1,
            write_error_rate: 0.25,
            write_conflict_rate: 0.25,
            ..Default::default()
        });
        for _ in 0..4000 {
            f.on_write("configmaps");
        }
        let s = f.stats();
        assert!((800..1200).contains(&s.write_errors), "{s:?}");
        assert!((800..1200).contains(&s.write_conflicts), "{s:?}");
    }

    #[test]
    fn resource_filter_and_clear() {
        let f = Faults::new(FaultConfig {
            write_error_rate: 1.0,
            resources: vec!["taskruns".into()],
            ..Default::default()
        });
        assert_eq!(f.on_write("configmaps"), None);
        assert_eq!(f.on_write("taskruns"), Some(WriteFault::InternalError));
        f.clear();
        assert_eq!(f.on_write("taskruns"), None);
        assert!(!f.config().is_active());
    }

    #[test]
    fn watch_cut_after_n_events() {
        let f = Faults::new(FaultConfig {
            watch_cut_after: Some(3),
            ..Default::default()
        });
        assert!(!f.cut_watch("pods", 2));
        assert!(f.cut_watch("pods", 3));
        assert_eq!(f.stats().watches_cut, 1);
    }

    proptest! {
        #[test]
        fn delay_stays_within_bounds(seed in any::<u64>(), base in 0u64..50, jitter in 0u64..50) {
            let f = Faults::new(FaultConfig {
                seed,
                latency: Duration::from_millis(base),
                latency_jitter: Duration::from_millis(jitter),
                ..Default::default()
            });
            if let Some(d) = f.delay("x") {
                prop_assert!(d >= Duration::from_millis(base));
                prop_assert!(d <= Duration::from_millis(base + jitter));
            } else {
                prop_assert!(base == 0 && jitter == 0);
            }
        }

        #[test]
        fn uniform_draws_in_unit_interval(seed in any::<u64>()) {
            let mut r = SplitMix64(seed);
            for _ in 0..100 {
                let x = r.next_f64();
                prop_assert!((0.0..1.0).contains(&x));
            }
        }
    }
}
