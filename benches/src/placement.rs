//! Where the two ends of a row run, for the shapes that keep both in this
//! process ([`Shape::CurrentThread`] and [`Shape::MultiThread`]), and the
//! runtimes of every shape.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::error::BenchError;
use crate::measure::{MULTI_THREAD_WORKERS, Shape};

/// The tokio runtime one end of a row runs on in `shape`: a current-thread
/// runtime, a multi-thread one with [`MULTI_THREAD_WORKERS`] workers, or,
/// for [`Shape::Processes`], a multi-thread one with tokio's default worker
/// count, as `#[tokio::main]` builds it.
pub(crate) fn runtime(shape: Shape) -> Result<Runtime, BenchError> {
    let rt = match shape {
        Shape::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Shape::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(MULTI_THREAD_WORKERS)
            .enable_all()
            .build()?,
        Shape::Processes => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        other => return Err(BenchError::UnsupportedShape(other)),
    };
    Ok(rt)
}

/// `fut`, cut off after `limit`; `what` names it in the timeout error.
pub(crate) async fn bounded<T>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, BenchError>>,
) -> Result<T, BenchError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| BenchError::Timeout(what))?
}

/// Run `fut` to completion on a new current-thread runtime, for at most
/// `limit`.
pub(crate) fn on_runtime<T>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, BenchError>>,
) -> Result<T, BenchError> {
    block_on(Shape::CurrentThread, limit, what, fut)
}

/// Run `fut` to completion in the `block_on` of a new runtime of `shape`
/// (see [`runtime`]), for at most `limit`. On a multi-thread runtime the
/// tasks `fut` spawns run on the workers, `fut` itself on this thread.
pub(crate) fn block_on<T>(
    shape: Shape,
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, BenchError>>,
) -> Result<T, BenchError> {
    runtime(shape)?.block_on(bounded(limit, what, fut))
}

/// Run `server` and `client`, the two ends of a row, placed as `shape`
/// says, and return both results:
///
/// - [`Shape::CurrentThread`]: each on its own OS thread, in the `block_on`
///   of a current-thread runtime of its own;
/// - [`Shape::MultiThread`]: both spawned as tasks on one multi-thread
///   runtime with [`MULTI_THREAD_WORKERS`] workers.
///
/// Each end is cut off after `limit` (`what` names it in the timeout
/// error). Other shapes are an error.
pub(crate) fn two_ends<A, B>(
    shape: Shape,
    limit: Duration,
    what: &'static str,
    server: impl Future<Output = Result<A, BenchError>> + Send + 'static,
    client: impl Future<Output = Result<B, BenchError>> + Send + 'static,
) -> Result<(A, B), BenchError>
where
    A: Send + 'static,
    B: Send + 'static,
{
    match shape {
        Shape::CurrentThread => std::thread::scope(|scope| {
            let s = scope.spawn(move || on_runtime(limit, what, server));
            let c = scope.spawn(move || on_runtime(limit, what, client));
            let c = c.join().map_err(|_| BenchError::Panicked)?;
            let s = s.join().map_err(|_| BenchError::Panicked)?;
            Ok((s?, c?))
        }),
        Shape::MultiThread => runtime(shape)?.block_on(async move {
            let s = tokio::spawn(bounded(limit, what, server));
            let c = tokio::spawn(bounded(limit, what, client));
            let c = c.await.map_err(|_| BenchError::Panicked)?;
            let s = s.await.map_err(|_| BenchError::Panicked)?;
            Ok((s?, c?))
        }),
        other => Err(BenchError::UnsupportedShape(other)),
    }
}
