//! The actor runtime under whole simulations: ordering, monitors, calls under node failure,
//! agent monitors.

mod agent_monitor;
mod calls;
mod cluster;
mod fifo;
mod monitors;
