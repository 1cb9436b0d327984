//! The platform's services, started as one supervised tree from a validated configuration.
//!
//! - [`StartGraph`] (`services/graph.rs`): services name what they need; the start order is a
//!   topological order of that graph, a cycle is an error naming every service on it, and the
//!   tree stops in reverse.
//! - [`Problems`] and [`Validate`] (`services/config.rs`): a typed configuration checks every
//!   field and reports every problem at once, before anything starts.
//! - [`limiter`]: per-key token buckets in a bounded table, decided off the mailbox and kept
//!   across the cleaner's restarts.
//! - [`bus`]: one event bus, routed by kind, dead subscribers removed, slow ones losing events
//!   (counted, with a visible gap) instead of growing it.
//! - [`cache`]: bounded entries with a time to live, expired then least recently used evicted
//!   first, off the mailbox and kept across the sweeper's restarts.
//! - [`resources`]: usage admitted against one threshold, subscribers told of pressure before
//!   the call that met it returns.
//! - [`breaker`]: a circuit breaker (closed, open, half-open) with its thresholds as data,
//!   decided off the mailbox, a typed refusal while open, and its state kept across its
//!   process's restarts.
//! - [`connections`]: a bounded pool of connections to one endpoint, handed out and checked
//!   in by a manager that never waits on the endpoint (the caller does the slow work), a typed
//!   refusal when exhausted, and a dead holder's connection returned.
//! - [`start`]: validates, orders, then starts the services under one rest-for-one supervisor
//!   in dependency order, so a service that restarts restarts everything started after it
//!   (everything that may depend on it), and stopping runs in reverse.

pub mod breaker;
pub mod bus;
pub mod cache;
mod config;
pub mod connections;
mod graph;
pub mod limiter;
pub mod resources;

pub use config::{Problem, Problems, Validate};
pub use graph::{GraphError, StartGraph};

use crate::rt::Duration;
use crate::supervisor::{self, ChildSpec, Spec, Strategy};
use crate::{Node, Pid, StartError};

/// One service: the child that runs it and the services it needs started first.
#[derive(Clone)]
pub struct Service {
    pub child: ChildSpec,
    pub needs: Vec<String>,
}

impl Service {
    pub fn new(child: ChildSpec) -> Service {
        Service {
            child,
            needs: Vec::new(),
        }
    }

    /// Starts after `other` (and restarts when it does).
    pub fn needs(mut self, other: &str) -> Self {
        self.needs.push(other.to_string());
        self
    }
}

/// Why the services did not start. Nothing was started in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServicesError {
    #[error("invalid configuration: {0}")]
    Config(Problems),
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A service's own start failed; the ones started before it were stopped in reverse order.
    #[error("a service failed to start: {0}")]
    Start(StartError),
}

/// Validates `config` (every problem, not the first), orders `services` by what they need, and
/// starts them under one rest-for-one supervisor named `name`, linked to `parent`, with the
/// given restart intensity. Returns the supervisor's pid and the start order.
pub async fn start(
    node: &Node,
    name: &str,
    parent: Option<Pid>,
    config: &dyn Validate,
    services: Vec<Service>,
    intensity: (u32, Duration),
) -> Result<(Pid, Vec<String>), ServicesError> {
    let problems = Problems::of(config);
    if !problems.is_empty() {
        return Err(ServicesError::Config(problems));
    }
    let mut graph = StartGraph::new();
    for s in &services {
        graph.service(&s.child.id, s.needs.iter().map(String::as_str));
    }
    let order = graph.order()?;
    let mut by_id: std::collections::BTreeMap<String, ChildSpec> = services
        .into_iter()
        .map(|s| (s.child.id.clone(), s.child))
        .collect();
    let mut spec = Spec::new(Strategy::RestForOne).intensity(intensity.0, intensity.1);
    for id in &order {
        if let Some(child) = by_id.remove(id) {
            spec = spec.child(child);
        }
    }
    let sup = supervisor::start(node, name, parent, spec)
        .await
        .map_err(ServicesError::Start)?;
    Ok((sup, order))
}

#[cfg(test)]
mod tests;
