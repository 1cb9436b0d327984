//! The real build (tokio and TCP, no `--cfg madsim`) cannot simulate, and says so in one line.

use crate::{groundhog, simulated, stderr};

#[test]
fn simulations_need_the_simulation_build() {
    let out = groundhog(&["run", "ping-pong", "--seed", "1"]);
    if simulated() {
        assert_eq!(out.status.code(), Some(0));
    } else {
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1);
        assert!(err.contains("built without --cfg madsim"), "{err}");
    }
}
