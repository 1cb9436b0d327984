//! What a scenario's driver can see of its run.

use std::sync::{Arc, Mutex};

use groundhog_runtime::rt::Duration;
use groundhog_sim::{BoxFuture, Driver, FaultMix, FaultPlan, Scenario, Setup, Sim, Violation};

/// Records what its driver was told, and when `quiesce` returned.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<(Duration, Duration, Duration)>>>);

impl Scenario for Seen {
    fn name(&self) -> &'static str {
        "seen"
    }
    fn about(&self) -> &'static str {
        "records the quiet and settle times its driver sees"
    }
    fn variants(&self) -> &'static [&'static str] {
        &["only"]
    }
    fn setup(&self) -> Setup {
        Setup::new(1, FaultMix::new(vec![], 0.0, 10)).settle(Duration::from_millis(1_500))
    }
    fn run(&self, ctx: Driver) -> BoxFuture<Result<(), Violation>> {
        let seen = self.0.clone();
        Box::pin(async move {
            ctx.quiesce().await;
            let row = (ctx.quiet_at(), ctx.settle(), ctx.now());
            seen.lock().unwrap().push(row);
            Ok(())
        })
    }
}

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn the_driver_sees_the_plans_quiet_time_and_its_settle_time() {
    for quiet_ms in [700, 2_300] {
        let scenario = Seen::default();
        Sim::new(1)
            .plan(FaultPlan::quiet(quiet_ms))
            .run(&scenario)
            .unwrap();
        let (quiet_at, settle, returned) = scenario.0.lock().unwrap()[0];
        assert_eq!(quiet_at, Duration::from_millis(quiet_ms));
        assert_eq!(settle, Duration::from_millis(1_500));
        assert!(returned >= quiet_at + settle, "quiesce returns after both");
    }
}
