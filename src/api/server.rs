//! The HTTP listener: accepts connections (plain or rustls), hands each to hyper, and keeps a
//! LAN neighbour from holding the box's connection slots.
//!
//! Limits, each answering one way of sitting on a connection:
//! - at most [`crate::config::MAX_CONNECTIONS`] at once, and `MAX_CONNECTIONS_PER_IP` from one address, so a
//!   flood from one machine cannot starve the others (refused ones are counted in `/stats` and
//!   logged at most once a minute per address);
//! - [`FIRST_REQUEST_TIMEOUT`] from accept to the first request (TLS handshake, HTTP/1-vs-2
//!   detection and the first request's headers), hyper's header timeout for every later
//!   HTTP/1 head (which also bounds idle keep-alive), [`crate::api::BODY_TIMEOUT`] for a body;
//! - [`IDLE_TIMEOUT`] without a byte either way and no request in flight closes any connection
//!   (an idle HTTP/2 one included).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::App;
use crate::clock::mono_ms;
use crate::system::lograte::LogRate;

/// From accept to the first request's headers (TLS, protocol detection, headers).
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Each later HTTP/1 request head, counted from when the connection waits for it: so also the
/// longest an idle keep-alive connection is kept.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// No byte read or written and no request in flight for this long closes a connection.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Connection counts, per address and in all, for the limits and `/stats`.
#[derive(Default)]
pub struct Connections {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    open: AtomicUsize,
    /// Refused for being over the per-address cap.
    pub refused: AtomicU64,
    /// Closed for taking too long to send a request or for idling.
    pub timed_out: AtomicU64,
}

impl Connections {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A slot for a connection from `ip`, or `None` when it already has `cap` open.
    fn admit(self: &Arc<Self>, ip: IpAddr, cap: usize, log: &LogRate) -> Option<Slot> {
        let ip = canonical(ip);
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let open = map.entry(ip).or_default();
        if *open >= cap {
            self.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(skipped) = log.allow(ip, "connection refused") {
                warn!(%ip, cap, skipped, "refusing connections over MAX_CONNECTIONS_PER_IP from this address (logged once a minute)");
            }
            return None;
        }
        *open += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            of: self.clone(),
            ip,
        })
    }
}

/// `::ffff:a.b.c.d` counts as `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    of: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.of.open.fetch_sub(1, Ordering::Relaxed);
        let mut map = self.of.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = map.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What a connection is doing, seen from outside hyper.
#[derive(Default)]
struct Activity {
    /// Requests begun on it.
    requests: AtomicU64,
    /// Requests whose handler is running.
    in_flight: AtomicUsize,
    /// [`mono_ms`] of the last byte read or written.
    last_io: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_io.store(mono_ms(), Ordering::Relaxed);
    }

    /// Resolves when the connection has overstayed: no first request within
    /// [`FIRST_REQUEST_TIMEOUT`] of `accepted`, or idle for [`IDLE_TIMEOUT`]. Sleeps until the
    /// next deadline rather than ticking.
    async fn overstayed(&self, accepted: Instant) -> &'static str {
        loop {
            if self.requests.load(Ordering::Relaxed) == 0 {
                let deadline = accepted + FIRST_REQUEST_TIMEOUT;
                if Instant::now() >= deadline {
                    return "no request within the first-request timeout";
                }
                tokio::time::sleep_until(deadline.into()).await;
                continue;
            }
            let idle_ms = mono_ms().saturating_sub(self.last_io.load(Ordering::Relaxed));
            let limit = IDLE_TIMEOUT.as_millis() as u64;
            if self.in_flight.load(Ordering::Relaxed) == 0 && idle_ms >= limit {
                return "idle";
            }
            let wait = if self.in_flight.load(Ordering::Relaxed) > 0 {
                limit
            } else {
                limit - idle_ms
            };
            tokio::time::sleep(Duration::from_millis(wait.max(100))).await;
        }
    }
}

/// A stream that stamps [`Activity::last_io`] on every byte moved.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: &Arc<Activity>) -> InFlight {
        a.requests.fetch_add(1, Ordering::Relaxed);
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(crate::config::MAX_CONNECTIONS));
    let per_ip = app.config.max_connections_per_ip;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = app.connections.admit(peer.ip(), per_ip, &app.lograte) else {
            drop(stream); // closed at once: the flood gets a reset, not a slot
            continue;
        };
        let (app, builder, watcher, tls) = (
            app.clone(),
            builder.clone(),
            graceful.watcher(),
            tls.clone(),
        );
        tokio::spawn(async move {
            let _held = (permit, slot);
            connection(app, stream, peer, tls, builder, watcher).await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => warn!("in-flight requests did not finish in time"),
    }
}

/// Serves one accepted connection (TLS first when configured) until the client is done,
/// it overstays its timeouts, or the server stops.
async fn connection(
    app: Arc<App>,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let accepted = Instant::now();
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::default());
    activity.touch();
    let svc = {
        let (app, activity) = (app.clone(), activity.clone());
        service_fn(move |req| {
            let (app, guard) = (app.clone(), InFlight::new(&activity));
            async move {
                let resp = crate::api::handle(app, req, peer).await;
                drop(guard);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let served = async {
        match tls {
            None => {
                let io = Tracked {
                    inner: stream,
                    activity: activity.clone(),
                };
                let conn = builder.serve_connection(TokioIo::new(io), svc);
                let _ = watcher.watch(conn.into_owned()).await;
            }
            Some(acceptor) => {
                let tls = match acceptor.accept(stream).await {
                    Ok(s) => s,
                    Err(e) => return debug!(%peer, error = %e, "TLS handshake failed"),
                };
                let io = Tracked {
                    inner: tls,
                    activity: activity.clone(),
                };
                let conn = builder.serve_connection(TokioIo::new(io), svc);
                let _ = watcher.watch(conn.into_owned()).await;
            }
        }
    };
    tokio::select! {
        _ = served => {}
        why = activity.overstayed(accepted) => {
            app.connections.timed_out.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, why, "connection closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_address_cap_counts_and_gives_back() {
        let c = Arc::new(Connections::default());
        let log = LogRate::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let slots: Vec<_> = (0..3).map(|_| c.admit(a, 3, &log).unwrap()).collect();
        assert!(
            c.admit(mapped, 3, &log).is_none(),
            "the same address, v4-mapped"
        );
        assert!(
            c.admit("127.0.0.1".parse().unwrap(), 3, &log).is_some(),
            "another address"
        );
        assert_eq!(c.refused.load(Ordering::Relaxed), 1);
        drop(slots);
        assert_eq!(c.open(), 0);
        assert!(c.admit(a, 3, &log).is_some());
    }
}
