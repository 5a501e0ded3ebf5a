//! The conformance suite of `tests/cases`, run as wasm under
//! `wasm-pack test --node core` (and in a browser with `--headless --chrome`).

#![cfg(target_arch = "wasm32")]

#[path = "../../tests/cases/mod.rs"]
mod cases;

use wasm_bindgen_test::wasm_bindgen_test;

macro_rules! cases_on {
    ($_target:ident; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[wasm_bindgen_test]
            async fn $case() {
                cases::$module::$case().await;
            }
        )*
    };
}

for_each_case!(cases_on, wasm);
