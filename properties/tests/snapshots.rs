//! Canonical traces of the catalogue, one chosen seed per variant. A behaviour change shows up as
//! a snapshot diff to review with `cargo insta review`; CI runs with `INSTA_UPDATE=no`.

use groundhog_scenarios::catalogue;
use groundhog_sim::Sim;

/// The seed whose trace each variant snapshots.
const SEED: u64 = 1;

#[test]
#[cfg_attr(not(madsim), ignore = "needs the simulation build (--cfg madsim)")]
fn catalogue_traces() {
    for scenario in catalogue().iter() {
        for variant in scenario.variants() {
            let report = Sim::new(SEED)
                .variant(*variant)
                .run(scenario.as_ref())
                .unwrap();
            let name = format!("{}-{variant}-seed-{SEED}", scenario.name());
            let text = format!("{}\n{}\n", report.summary(), report.trace.lines.join("\n"));
            insta::with_settings!({
                snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"),
                prepend_module_to_snapshot => false,
                omit_expression => true,
            }, {
                insta::assert_snapshot!(name, text);
            });
        }
    }
}
