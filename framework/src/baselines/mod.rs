//! Baselines that share the data budget and seeds of the search.

pub mod majority;
pub mod linear_probe;
pub mod finetune;
