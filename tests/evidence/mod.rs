//! Helpers shared by the evidence suites (model-based and linearizability tests).
#![allow(dead_code)]

pub mod refmodel;
