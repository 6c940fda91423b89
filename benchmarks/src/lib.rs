//! swarmbus benchmarks: the `swarm-load` engine and the peers it is compared with.
#![forbid(unsafe_code)]

pub mod load;
pub mod peers;
pub mod suite;
