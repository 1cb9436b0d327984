use super::{delay, enable, fires, is_enabled, ENABLE, FIRE};
use crate::rt::{self, Duration};

/// Off unless enabled: nothing fires, in any build. Catches a default of "on" (which would
/// change every existing trace hash).
#[crate::rt::test]
async fn buggify_is_off_unless_enabled() {
    assert!(!is_enabled());
    assert!((0..1_000).all(|_| !crate::buggify!("anything", 1.0)));
    assert_eq!(delay("anything", Duration::from_millis(5)), None);
    enable(1);
    // The real build has no simulated world to hold the state: still off.
    assert_eq!(is_enabled(), rt::SIMULATED);
}

/// Two levels: about a quarter of the sites are enabled for a seed, an enabled one fires about
/// once in twenty evaluations, a disabled one never. Catches one level only (every site firing
/// at FIRE, or every enabled site always firing).
#[crate::rt::test]
async fn sites_are_enabled_per_seed_then_fire_with_their_own_probability() {
    if !rt::SIMULATED {
        return;
    }
    enable(7);
    let names: Vec<String> = (0..400).map(|i| format!("site-{i}")).collect();
    // With fire probability 1, a site fires exactly when it is enabled.
    let enabled: Vec<&String> = names.iter().filter(|n| fires(n, 1.0)).collect();
    let share = enabled.len() as f64 / names.len() as f64;
    assert!((ENABLE - 0.08..=ENABLE + 0.08).contains(&share), "{share}");
    let site = enabled[0];
    let fired = (0..4_000).filter(|_| fires(site, FIRE)).count();
    let rate = fired as f64 / 4_000.0;
    assert!((FIRE * 0.6..=FIRE * 1.4).contains(&rate), "{rate}");
    let off = names.iter().find(|n| !enabled.contains(n)).unwrap();
    assert!((0..1_000).all(|_| !fires(off, 1.0)));
}

/// A site's draws depend on the seed and its name only: the same in another order, beside
/// other sites, and different for another seed. Catches sites sharing one stream.
#[crate::rt::test]
async fn a_sites_draws_depend_on_the_seed_and_its_name_only() {
    if !rt::SIMULATED {
        return;
    }
    let run = |seed: u64, others_first: bool| {
        enable(seed);
        if others_first {
            for i in 0..50 {
                let _ = fires(&format!("other-{i}"), 0.5);
            }
        }
        (0..40)
            .map(|i| fires(&format!("s-{}", i % 8), 0.5))
            .collect::<Vec<bool>>()
    };
    let a = run(3, false);
    assert_eq!(a, run(3, true));
    assert!(a.iter().any(|f| *f), "some site fires at 0.5 for seed 3");
    assert_ne!(a, run(4, false));
}
