//! Helpers shared by the evidence suites: the reference model, the operations
//! of the model-based test and the driver that runs them on both sides.
#![allow(dead_code)]

pub mod driver;
pub mod ops;
pub mod refmodel;
