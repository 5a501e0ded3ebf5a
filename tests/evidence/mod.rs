//! Helpers shared by the evidence suites: the reference model, the operations
//! of the model-based test and the driver that runs them on both sides.
#![allow(dead_code)]
// The model's calls fail with an `Out`, the same normalised outcome they
// succeed with (states included), so that both sides compare with `==`.
#![allow(clippy::result_large_err)]

pub mod driver;
pub mod ops;
pub mod refmodel;
