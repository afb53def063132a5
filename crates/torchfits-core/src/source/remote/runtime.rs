//! The runtime remote requests run on: its own, so that blocking readers on any thread (a
//! dataset's workers, a caller's own async runtime) can wait for them.

use std::future::Future;
use std::io;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// The process's runtime for remote requests: two worker threads (the work is waiting on
/// sockets), made on first use.
fn runtime() -> io::Result<&'static Runtime> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("torchfits-remote")
        .enable_all()
        .build()?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Runs `task` on the remote runtime and waits for its result on this thread. Unlike
/// `Runtime::block_on` this never panics inside another runtime: the task runs on ours, this
/// thread only waits on a channel.
pub(super) fn block_on<T: Send + 'static>(task: impl Future<Output = T> + Send + 'static) -> io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        // the receiver waits until it gets this or the task is dropped
        let _ = tx.send(task.await);
    });
    rx.recv().map_err(|_| io::Error::other("a remote request's task ended without an answer"))
}
