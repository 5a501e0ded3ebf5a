//! One conformance suite, run unchanged on tokio (multi-thread and
//! current-thread), async-executor (smol) and `futures::executor`.

mod cases;

use std::future::Future;

fn tokio_multi_thread(case: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
        .block_on(case);
}

fn tokio_current_thread(case: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(case);
}

fn smol_executor(case: impl Future<Output = ()>) {
    let ex = async_executor::LocalExecutor::new();
    smol::block_on(ex.run(case));
}

fn futures_executor(case: impl Future<Output = ()>) {
    futures::executor::block_on(case);
}

macro_rules! cases_on {
    ($executor:ident; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                super::$executor(crate::cases::$module::$case());
            }
        )*
    };
}

mod on_tokio_multi_thread {
    crate::for_each_case!(cases_on, tokio_multi_thread);
}

mod on_tokio_current_thread {
    crate::for_each_case!(cases_on, tokio_current_thread);
}

mod on_smol {
    crate::for_each_case!(cases_on, smol_executor);
}

mod on_futures_executor {
    crate::for_each_case!(cases_on, futures_executor);
}
