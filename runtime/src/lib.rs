//! Groundhog's runtime.
//!
//! - [`rt`]: the one seam to the executor, clock, network, random source and (under
//!   simulation) the simulated world. Nothing else in Groundhog names the backend.
//! - [`trace`]: how runtime code reports observable events, so a harness can record them.
//!
//! ```
//! use groundhog_runtime::rt;
//!
//! // A workload stream derived from a seed: the same seed gives the same draws.
//! use rand::RngCore;
//! let mut a = rt::seeded_rng(7, rt::Stream::Workload);
//! let mut b = rt::seeded_rng(7, rt::Stream::Workload);
//! assert_eq!(a.next_u64(), b.next_u64());
//! ```

pub mod rt;
pub mod trace;

#[doc(hidden)]
pub use tracing as __tracing;
