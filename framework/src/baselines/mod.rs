//! Baselines that share the data budget and seeds of the search.

pub mod finetune;
pub mod linear_probe;
pub mod majority;
