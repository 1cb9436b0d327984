//! Buggify points: places where the code itself asks for trouble, FoundationDB style.
//!
//! `buggify!("site")` is `true` only in a simulated world whose harness turned buggify on
//! ([`enable`]), and then on two levels: each site is *enabled* once per seed with probability
//! [`ENABLE`], and an enabled site *fires* on each evaluation with its own probability
//! ([`FIRE`] unless given). A site that never fires costs one table lookup. Every draw comes from
//! the site's own stream, derived from the seed and the site's name (`rt::Stream::Buggify`), so no
//! other consumer's draws move, and adding a site moves no other site's. A firing is traced
//! (`buggify site=...`).
//!
//! Off by default, always off in the real build, and off outside a simulated world: a run that
//! does not enable it draws nothing and traces nothing, so its trace hash is unchanged.
//!
//! The runtime's own sites (docs/semantics.md, "Buggify sites") delay work that real systems do
//! late, and never reorder what the semantics promise to keep ordered:
//!
//! - `supervisor-restart-delay`: a supervisor waits up to 100 ms before a restart.
//! - `registry-sync-delay`: a cluster registry replica skips one periodic push.
//! - `call-reply-delay`: a caller is woken up to 50 ms after its reply arrived.
//! - `monitor-down-delay`: a dead process's `Down`, or its exit signal over a link, reaches a
//!   local receiver up to 50 ms late; the pair's later signals wait behind it.
//!
//! ```
//! use groundhog_runtime::buggify;
//! // In a scenario's server loop: sometimes answer slowly.
//! if buggify!("slow-answer") {
//!     // ...
//! }
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

use rand::Rng;

use crate::rt::{self, ChaCha8Rng, Duration, Stream};

/// The probability that a site is enabled for a seed.
pub const ENABLE: f64 = 0.25;
/// The probability that an enabled site fires each time it is evaluated, unless given.
pub const FIRE: f64 = 0.05;

/// `true` when buggify site `$site` fires (see the module docs); `buggify!("site", p)` fires an
/// enabled site with probability `p` instead of [`FIRE`].
#[macro_export]
macro_rules! buggify {
    ($site:expr) => {
        $crate::buggify::fires($site, $crate::buggify::FIRE)
    };
    ($site:expr, $p:expr) => {
        $crate::buggify::fires($site, $p)
    };
}

struct Site {
    enabled: bool,
    rng: ChaCha8Rng,
}

/// One world's buggify state (held by the world through `rt::world_state`).
#[derive(Default)]
struct State(Mutex<Option<On>>);

struct On {
    seed: u64,
    sites: BTreeMap<String, Site>,
}

fn lock(state: &State) -> std::sync::MutexGuard<'_, Option<On>> {
    state.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns buggify on for the current simulated world, drawing from `seed`. Does nothing outside
/// a simulated world (and in the real build).
pub fn enable(seed: u64) {
    if let Some(state) = rt::world_state::<State>() {
        *lock(&state) = Some(On {
            seed,
            sites: BTreeMap::new(),
        });
    }
}

/// Whether buggify is on in the current world.
pub fn is_enabled() -> bool {
    rt::world_state::<State>().is_some_and(|s| lock(&s).is_some())
}

/// FNV-1a 64 of the site's name: the site's stream within the seed.
fn site_hash(site: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in site.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Draws with site `site`'s generator, if buggify is on and the site enabled and firing.
fn draw<T>(site: &str, fire: f64, then: impl FnOnce(&mut ChaCha8Rng) -> T) -> Option<T> {
    let state = rt::world_state::<State>()?;
    let mut guard = lock(&state);
    let on = guard.as_mut()?;
    let seed = on.seed;
    let entry = on.sites.entry(site.to_string()).or_insert_with(|| {
        let mut rng = rt::seeded_rng(seed ^ site_hash(site), Stream::Buggify);
        Site {
            enabled: rng.gen_bool(ENABLE),
            rng,
        }
    });
    if !entry.enabled || !entry.rng.gen_bool(fire.clamp(0.0, 1.0)) {
        return None;
    }
    Some(then(&mut entry.rng))
}

/// Whether site `site` fires now, with probability `fire` once enabled (traced when it does).
pub fn fires(site: &str, fire: f64) -> bool {
    let fired = draw(site, fire, |_| ()).is_some();
    if fired {
        crate::event!("buggify", site = site);
    }
    fired
}

/// When site `site` fires (with probability [`FIRE`] once enabled): a delay drawn from
/// 1 ms..=`max`, traced with the site.
pub fn delay(site: &str, max: Duration) -> Option<Duration> {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
    let ms = draw(site, FIRE, |rng| rng.gen_range(1..=max_ms))?;
    crate::event!("buggify", site = site, delay_ms = ms);
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests;
