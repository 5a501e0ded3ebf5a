//! Parse speed of number-heavy JSON: `contextkit_json::parse` against
//! serde_json with `float_roundtrip` (its exact mode) on arrays of 10,000
//! doubles as `JSON.stringify` and serde_json write them.
//!
//! `cargo bench -p contextkit-json --bench parse`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use std::hint::black_box;

/// splitmix64: the same documents on every run.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A JSON array of 10,000 numbers, each the shortest text of `f(random)`.
fn document(seed: u64, f: impl Fn(u64) -> f64) -> String {
    let mut next = rng(seed);
    let numbers: Vec<f64> = (0..10_000).map(|_| f(next())).collect();
    serde_json::to_string(&numbers).unwrap()
}

fn parse(c: &mut Criterion) {
    let documents = [
        // Any finite double: 15 to 17 digits, exponents from -308 to 308.
        (
            "any double",
            document(1, |bits| {
                let f = f64::from_bits(bits);
                if f.is_finite() { f } else { 0.5 }
            }),
        ),
        // Uniform in [0, 1): mostly 16 or 17 digits after "0.".
        (
            "unit interval",
            document(2, |r| (r >> 11) as f64 / (1_u64 << 53) as f64),
        ),
        // Amounts with two decimals below 100,000 ("1234.56").
        (
            "two decimals",
            document(3, |r| (r % 10_000_000) as f64 / 100.0),
        ),
    ];
    let mut group = c.benchmark_group("parse");
    for (name, text) in &documents {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("contextkit/{name}"), |b| {
            b.iter(|| contextkit_json::parse(black_box(text), 128, false).unwrap())
        });
        group.bench_function(format!("serde_json/{name}"), |b| {
            b.iter(|| serde_json::from_str::<Value>(black_box(text)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
