//! Metrics: counters and histograms the runtime keeps, and their snapshot.

pub mod histogram;
