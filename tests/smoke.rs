//! Placeholder until the conformance suite lands.
#[test]
fn builds() {}
