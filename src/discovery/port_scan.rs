//! TCP connect scan: every (host, port) of the range, at most `concurrency` attempts in flight,
//! each given `timeout`. A silent /24 × 7 ports is 1 778 attempts: with 1 024 in flight and
//! 0.8 s each, two waves, 1.6 s (measured in docs/BENCHMARKS.md). A refused port answers at
//! once; only silence costs the full timeout.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;

/// Default time to wait for one connection.
pub const TIMEOUT: Duration = Duration::from_millis(800);

/// Most attempts in flight, given the open-file limit (each is a socket).
pub fn concurrency() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    (soft.saturating_sub(256) as usize).clamp(16, 1024)
}

/// The open (host, port) pairs, in scan order. `on_progress(done, total)` is called every
/// 256 attempts.
pub async fn scan(
    hosts: &[Ipv4Addr],
    ports: &[u16],
    timeout: Duration,
    concurrency: usize,
    mut on_progress: impl FnMut(usize, usize),
) -> Vec<(Ipv4Addr, u16)> {
    let pairs: Vec<(Ipv4Addr, u16)> = hosts
        .iter()
        .flat_map(|h| ports.iter().map(move |p| (*h, *p)))
        .collect();
    let total = pairs.len();
    let mut results = futures_util::stream::iter(pairs.into_iter().enumerate())
        .map(|(i, (h, p))| async move {
            let addr = SocketAddr::from((h, p));
            let open = matches!(
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await,
                Ok(Ok(_))
            );
            (i, h, p, open)
        })
        .buffer_unordered(concurrency.max(1));
    let mut open = Vec::new();
    let mut done = 0;
    while let Some((i, h, p, is_open)) = results.next().await {
        done += 1;
        if done % 256 == 0 {
            on_progress(done, total);
        }
        if is_open {
            open.push((i, h, p));
        }
    }
    open.sort();
    open.into_iter().map(|(_, h, p)| (h, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_a_listening_port_and_not_a_closed_one() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let closed = {
            let c = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            c.local_addr().unwrap().port()
        };
        let open = scan(
            &[Ipv4Addr::LOCALHOST],
            &[closed, port],
            TIMEOUT,
            8,
            |_, _| {},
        )
        .await;
        assert_eq!(open, vec![(Ipv4Addr::LOCALHOST, port)]);
        assert!(concurrency() >= 16);
    }
}
