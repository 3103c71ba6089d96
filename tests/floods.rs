//! Connection floods from one LAN neighbour do not take the box off the air: 2 100 connections
//! that send nothing, and 2 100 that send a login's headers and one byte of its body, while a
//! client on another address polls `/health` and a live playlist. Every poll answers quickly,
//! the flood's connections over the per-address cap are refused at once, and the rest are
//! closed within the first-request and body timeouts.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cams::Camsim;
use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const FLOOD: usize = 2100;

/// How each flood connection ended: refused (closed before anything was sent), or closed by
/// the server after `Duration`, or still open when the test stopped looking.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Refused,
    ClosedAfter(Duration),
    StillOpen,
}

/// Opens `n` connections from `from` to `to`, sends `send` on each, and watches for the close.
async fn flood(
    from: &str,
    to: SocketAddr,
    n: usize,
    send: &'static [u8],
    watch: Duration,
) -> Vec<tokio::task::JoinHandle<End>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut ends = Vec::new();
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    for _ in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let s = TcpSocket::new_v4().unwrap();
        s.bind(from).unwrap();
        let mut c: TcpStream = s.connect(to).await.expect("connect");
        drop(permit);
        let opened = Instant::now();
        ends.push(tokio::spawn(async move {
            if !send.is_empty() && c.write_all(send).await.is_err() {
                return End::Refused;
            }
            let mut buf = [0u8; 4096];
            let deadline = tokio::time::sleep(watch);
            tokio::pin!(deadline);
            let mut got_bytes = false;
            loop {
                tokio::select! {
                    _ = &mut deadline => return End::StillOpen,
                    r = c.read(&mut buf) => match r {
                        Ok(0) | Err(_) if !got_bytes && opened.elapsed() < Duration::from_millis(500) => return End::Refused,
                        Ok(0) | Err(_) => return End::ClosedAfter(opened.elapsed()),
                        Ok(_) => got_bytes = true,
                    },
                }
            }
        }));
    }
    ends
}

/// The URL of the newest part a playlist lists.
fn newest_part(playlist_url: &str, body: &str) -> Option<String> {
    let uri = body
        .lines()
        .rev()
        .find(|l| l.starts_with("#EXT-X-PART:"))?
        .split("URI=\"")
        .nth(1)?
        .split('"')
        .next()?;
    let base = &playlist_url[..playlist_url.rfind('/')? + 1];
    Some(format!("{base}{uri}"))
}

/// `PART-TARGET` of an LL-HLS playlist.
fn part_target(body: &str) -> Duration {
    body.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PART-INF:PART-TARGET="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .expect("an LL-HLS playlist has PART-TARGET")
}

fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(
        hard >= 2 * FLOOD as u64 + 512,
        "the test needs {} descriptors; the hard limit is {hard} (ulimit -Hn)",
        2 * FLOOD + 512
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_from_one_address_leave_the_box_answering_others() {
    raise_nofile();
    let cams = Camsim::start();
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.9", "rtsp_url": cams.url("cam1")}),
    )
    .await;
    let hls = s.start_stream(&admin, "127.0.0.9").await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    support::wait_until("a playable playlist", 20, async || {
        let r = reqwest::get(&hls).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let to: SocketAddr = s
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();

    // the poller: a fresh connection each time, from 127.0.0.1
    let (health, playlist) = (s.url("/health"), hls.clone());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut worst = Duration::ZERO;
            let mut polls = 0;
            let mut failures = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // /health, the playlist, and the newest part it lists; a playlist asked for
                // right after a segment closed waits for the next one's first part (by design,
                // for hls.js), so that wait is allowed on top
                let mut part = None;
                let mut allowance = Duration::ZERO;
                for url in [Some(health.clone()), Some(playlist.clone()), None] {
                    let Some(url) = url.or_else(|| part.take()) else {
                        continue;
                    };
                    let t = Instant::now();
                    match client.get(url.as_str()).send().await {
                        Ok(r) if r.status() == 200 => {
                            let body = r.text().await.unwrap_or_default();
                            if url == playlist {
                                part = newest_part(&playlist, &body);
                                allowance = part_target(&body);
                            }
                        }
                        Ok(r) => failures.push(format!("{url}: {}", r.status())),
                        Err(e) => failures.push(format!("{url}: {e}")),
                    }
                    let took = t.elapsed().saturating_sub(if url == playlist {
                        allowance
                    } else {
                        Duration::ZERO
                    });
                    worst = worst.max(took);
                    polls += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (worst, polls, failures)
        })
    };

    let watch = Duration::from_secs(45);
    let (idle, slow) = tokio::join!(
        flood("127.0.0.2", to, FLOOD, b"", watch),
        flood(
            "127.0.0.3",
            to,
            FLOOD,
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
            watch
        ),
    );
    let mut results = Vec::new();
    for (name, ends) in [("idle", idle), ("slow body", slow)] {
        let mut v = Vec::new();
        for e in ends {
            v.push(e.await.unwrap());
        }
        results.push((name, v));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, polls, failures) = poller.await.unwrap();

    assert!(
        failures.is_empty(),
        "{} polls failed, the first: {:?}",
        failures.len(),
        &failures[..failures.len().min(2)]
    );
    assert!(polls > 100, "only {polls} polls");
    assert!(
        worst < Duration::from_millis(200),
        "the slowest poll took {worst:?}"
    );
    let cap = 128;
    for ((name, ends), limit) in results.iter().zip([12, 33]) {
        let refused = ends.iter().filter(|e| **e == End::Refused).count();
        let open = ends.iter().filter(|e| **e == End::StillOpen).count();
        let late: Vec<_> = ends
            .iter()
            .filter_map(|e| match e {
                End::ClosedAfter(d) if *d > Duration::from_secs(limit) => Some(*d),
                _ => None,
            })
            .collect();
        assert_eq!(open, 0, "{name}: {open} connections never closed");
        assert!(
            late.is_empty(),
            "{name}: closed after more than {limit} s: {late:?}"
        );
        assert!(
            refused >= FLOOD - cap,
            "{name}: only {refused} refused of {FLOOD} (cap {cap})"
        );
    }
    let (_, stats) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    let http = &stats["http"];
    assert!(
        http["refused_over_per_ip_cap"].as_u64().unwrap() >= 2 * (FLOOD - cap) as u64,
        "{http}"
    );
    assert!(
        http["closed_for_timeout"].as_u64().unwrap() >= cap as u64,
        "{http}"
    );
    // one log line per address, not one per refused connection
    let logs = s.logs();
    let lines = logs
        .lines()
        .filter(|l| l.contains("refusing connections over MAX_CONNECTIONS_PER_IP"))
        .count();
    assert_eq!(lines, 2, "{logs}");
}
