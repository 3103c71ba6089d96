//! The benchmark's floor: a bare retina reader that pulls the same streams vigia pulls
//! (TCP, `FrameFormat::MP4`) and drops every frame. Whatever vigia spends above this is its
//! own cost (fan-out, muxing, HLS, HTTP).
//!
//! `cargo run --release --example retina_floor -- <rtsp-base-url> <count> <seconds>`
//! pulls `<rtsp-base-url>/cam1` … `/cam<count>` for `<seconds>` and prints the frames seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{
    PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat};

async fn pull(url: String, frames: Arc<AtomicU64>) -> Result<(), retina::Error> {
    let mut s = Session::describe(
        url::Url::parse(&url).expect("URL"),
        SessionOptions::default(),
    )
    .await?;
    let video = s
        .streams()
        .iter()
        .position(|st| st.media() == "video")
        .expect("a video stream");
    s.setup(
        video,
        SetupOptions::default()
            .transport(Transport::Tcp(TcpTransportOptions::default()))
            .frame_format(FrameFormat::MP4),
    )
    .await?;
    let play = PlayOptions::default()
        .initial_timestamp(retina::client::InitialTimestampPolicy::Permissive);
    let mut d = s.play(play).await?.demuxed()?;
    while let Some(item) = d.next().await {
        if let CodecItem::VideoFrame(f) = item? {
            drop(f.into_data());
            frames.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (base, count, secs) = match &args[1..] {
        [b, c, s] => (
            b.clone(),
            c.parse::<usize>().expect("count"),
            s.parse::<u64>().expect("seconds"),
        ),
        _ => panic!("usage: retina_floor <rtsp-base-url> <count> <seconds>"),
    };
    let frames = Arc::new(AtomicU64::new(0));
    for i in 1..=count {
        let (u, f) = (format!("{base}/cam{i}"), frames.clone());
        tokio::spawn(async move {
            if let Err(e) = pull(u.clone(), f).await {
                eprintln!("{u}: {e}");
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    println!("frames {}", frames.load(Ordering::Relaxed));
}
