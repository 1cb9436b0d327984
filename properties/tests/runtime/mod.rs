//! The actor runtime under whole simulations: ordering, monitors, calls under node failure.

mod calls;
mod cluster;
mod fifo;
mod monitors;
mod registry;
