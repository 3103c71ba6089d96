//! A light LL-HLS player for benchmarks: for each playlist URL it does what a player does at
//! the live edge — a blocking playlist reload for the next part (`_HLS_msn`/`_HLS_part`),
//! then that part — and counts parts, bytes and errors.
//!
//! `cargo run --release --example hls_poller -- <file with one hls_url per line> <seconds>`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Counts {
    parts: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

/// The next part after `msn.part` according to `playlist`.
fn next_part(playlist: &str, msn: u64, part: u64) -> (u64, u64) {
    let parts_of_msn = playlist.matches(&format!("URI=\"part{msn}.")).count() as u64;
    let complete = playlist.contains(&format!("seg{msn}.m4s"));
    if complete && part + 1 >= parts_of_msn {
        (msn + 1, 0)
    } else {
        (msn, part + 1)
    }
}

fn hint(playlist: &str) -> Option<(u64, u64)> {
    let h = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part"))?;
    let (m, p) = h.split_once(".m4s")?.0.split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

async fn play(client: reqwest::Client, url: String, c: Arc<Counts>) {
    let (base, query) = url
        .split_once('?')
        .map_or((url.clone(), String::new()), |(b, q)| {
            (b.to_string(), q.to_string())
        });
    let dir = base
        .rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap_or_default();
    let mut pos: Option<(u64, u64)> = None;
    loop {
        let pl_url = match pos {
            None => url.clone(),
            Some((m, p)) => format!("{base}?{query}&_HLS_msn={m}&_HLS_part={p}"),
        };
        let playlist = match client.get(&pl_url).send().await {
            Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
            _ => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
                pos = None;
                continue;
            }
        };
        let (m, p) = match pos {
            Some(x) => x,
            None => match hint(&playlist) {
                Some(x) => x,
                None => continue,
            },
        };
        match client
            .get(format!("{dir}/part{m}.{p}.m4s?{query}"))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let n = r.bytes().await.map(|b| b.len()).unwrap_or(0);
                c.parts.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(n as u64, Ordering::Relaxed);
                pos = Some(next_part(&playlist, m, p));
            }
            _ => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                pos = None;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (file, secs) = match &args[1..] {
        [f, s] => (f.clone(), s.parse::<u64>().expect("seconds")),
        _ => panic!("usage: hls_poller <urls-file> <seconds>"),
    };
    let urls: Vec<String> = std::fs::read_to_string(&file)
        .expect("urls file")
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    let c = Arc::new(Counts::default());
    for u in urls.iter().cloned() {
        tokio::spawn(play(client.clone(), u, c.clone()));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    println!(
        "players {} parts {} bytes {} errors {}",
        urls.len(),
        c.parts.load(Ordering::Relaxed),
        c.bytes.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed)
    );
}
