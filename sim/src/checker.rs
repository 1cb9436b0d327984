//! History checkers: does some correct system explain what the clients saw?
//!
//! - [`linear`]: linearizability of single-object models ([`Register`], [`Map`], [`Set`],
//!   [`Queue`], [`Counter`], [`Fence`], or any [`Model`]), partitioned by key, Wing-Gong/Lowe search with
//!   memoised `(linearized set, model state)` pairs and a step budget.
//! - [`elle`]: transactional anomalies (G0, G1a, G1b, G1c, G-single, G2) of list-append and
//!   read-write-register transactions, from a dependency graph's strongly connected components.
//!
//! Neither knows a scenario: both read [`Operation`](crate::history::Operation)s.

pub mod elle;
pub mod linear;
mod models;

pub use elle::{Anomaly, Elle, Workload};
pub use linear::{check as check_linear, Linear, NotLinearizable, Verdict};
pub use models::{Counter, Fence, Map, Model, Queue, Register, Set};

#[cfg(test)]
mod known;
#[cfg(test)]
mod unknowns;
