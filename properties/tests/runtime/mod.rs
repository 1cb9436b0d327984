//! The actor runtime under whole simulations: ordering, monitors, calls under node failure,
//! supervision against a model, the registry, agent monitors.

mod agent_monitor;
mod calls;
mod cluster;
mod down_fence;
mod fifo;
mod monitors;
mod registry;
mod stall;
mod supervision;
mod supervision_trees;
