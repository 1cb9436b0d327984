//! Supervisors.
