//! The tokio echo server: a `current_thread` runtime on the server's thread, the same steps
//! as the other two servers, written the way a tokio program usually is.
//!
//! One task accepts the expected connections; each connection is a task of its own
//! (`spawn_local`) with a buffer of [`BUF_SIZE`] bytes: `read` into it, `write_all` the bytes
//! read, `read` again, until the peer closes (a read of 0), then drop the stream (close). The
//! server stops once every expected connection has been accepted and closed. It serves
//! [`Until::Closed`] only: `echo-server` has no tokio side.

use std::cell::Cell;
use std::net::TcpListener;
use std::rc::Rc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{BUF_SIZE, MAX_ACCEPT_ERRORS, ServerStats, Until};
use crate::error::BenchError;

/// What the connection tasks count.
#[derive(Default)]
struct Counts {
    closed: Cell<u64>,
    echoed: Cell<u64>,
    echoes: Cell<u64>,
    errors: Cell<u64>,
}

fn add(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get() + n);
}

/// One connection: echo until the peer closes or an error; the stream is closed on return.
async fn connection(mut stream: tokio::net::TcpStream, counts: Rc<Counts>) {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    add(&counts.errors, 1);
                    break;
                }
                add(&counts.echoed, n as u64);
                add(&counts.echoes, 1);
            }
            Err(_) => {
                add(&counts.errors, 1);
                break;
            }
        }
    }
    drop(stream);
    add(&counts.closed, 1);
}

/// Serves connections on `listener` until `until` (which must be [`Until::Closed`]), then
/// returns what it counted. Calls `ready` once the runtime exists and it is accepting.
pub fn serve(
    listener: &TcpListener,
    until: Until,
    ready: impl FnOnce(),
) -> Result<ServerStats, BenchError> {
    let Until::Closed(expected) = until else {
        return Err(BenchError::Other(
            "the tokio echo server serves a fixed number of connections only".to_owned(),
        ));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| BenchError::Io("tokio runtime", e))?;
    let std_listener = listener
        .try_clone()
        .map_err(|e| BenchError::Io("dup the listener", e))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| BenchError::Io("set the listener non-blocking", e))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|e| BenchError::Io("tokio listener", e))?;
        ready();
        let counts = Rc::new(Counts::default());
        let mut stats = ServerStats::default();
        let mut tasks = Vec::with_capacity(expected as usize);
        let mut accept_errors = 0;
        while stats.accepted < u64::from(expected) {
            match listener.accept().await {
                Ok((stream, _)) => {
                    stats.accepted += 1;
                    tasks.push(tokio::task::spawn_local(connection(stream, counts.clone())));
                }
                Err(e) => {
                    stats.errors += 1;
                    accept_errors += 1;
                    if accept_errors > MAX_ACCEPT_ERRORS {
                        return Err(BenchError::Io("accept (tokio echo)", e));
                    }
                }
            }
        }
        for task in tasks {
            if task.await.is_err() {
                stats.errors += 1;
            }
        }
        stats.closed = counts.closed.get();
        stats.echoed = counts.echoed.get();
        stats.echoes = counts.echoes.get();
        stats.errors += counts.errors.get();
        Ok(stats)
    })
}
