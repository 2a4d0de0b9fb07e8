//! A TCP proxy that a test can cut and restore, or slow down, to put a real
//! server out of reach (or far away) without touching the shared server itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub struct FaultProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// The delay of every chunk forwarded, in microseconds.
    latency: Arc<AtomicU64>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accepting: AbortHandle,
}

impl FaultProxy {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("a bound port");
        let up = Arc::new(AtomicBool::new(true));
        let latency = Arc::new(AtomicU64::new(0));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (target, up_, latency_, links_) = (
            target.to_owned(),
            up.clone(),
            latency.clone(),
            links.clone(),
        );
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !up_.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused as soon as it is made
                }
                let (target, latency) = (target.clone(), latency_.clone());
                let link = tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&target).await {
                        let (client_reads, client_writes) = client.into_split();
                        let (server_reads, server_writes) = server.into_split();
                        tokio::join!(
                            forward(client_reads, server_writes, &latency),
                            forward(server_reads, client_writes, &latency),
                        );
                    }
                });
                links_
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(link.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            up,
            latency,
            links,
            accepting,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Delays every chunk read from now on, in both directions, on open links
    /// and new ones, by `latency`; `Duration::ZERO` takes the delay away.
    pub fn set_latency(&self, latency: Duration) {
        self.latency.store(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

/// Copies one direction of a link: each chunk is sent on `latency` after it
/// was read. Reading goes on meanwhile, so the link is slow, not narrow: a chunk
/// waits for its own delay, never for the delays of the chunks before it.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, latency: &AtomicU64) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buffer).await {
            let delay = Duration::from_micros(latency.load(Ordering::SeqCst));
            if chunks
                .send((Instant::now() + delay, buffer[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let writing = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await; // the other side closed: pass the close on
    };
    tokio::join!(reading, writing);
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
        self.accepting.abort();
    }
}
