//! Whole-simulation tests over many seeds, each a small test-only scenario.

mod runtime;
