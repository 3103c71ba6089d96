//! `vigia demo`: everything a newcomer needs to watch video with one command. It starts the
//! camera simulator on loopback with four cameras (channels of one simulated DVR, the first
//! with audio), a vigia server on a fresh embedded store in a temporary directory, an admin
//! with a random password, and prints the page's address first, then the login, the
//! `hls_url`s and a line to try.

use std::sync::Arc;

use crate::api::App;
use crate::app;
use crate::auth::jwt::PlayerScope;
use crate::camsim::{self, Camsim, Media};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::media::ingest::Source;
use crate::services::cameras::CameraRequest;
use crate::store::{CreateMode, Role};

const CAMERAS: u32 = 4;

pub async fn run(mut config: Config) -> Result<()> {
    let dir = tempfile_dir()?;
    config.data_dir = dir.clone();
    config.database = None; // a demo never touches a real database
    config.recordings_dir = dir.join("recordings");
    let media =
        Media::embedded().map_err(|e| Error::internal(format!("embedded fixtures: {e}")))?;
    let sim = Camsim::new(media, "admin", "camsim", false);
    let sim_addr = camsim::start(sim, std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| Error::failed("camera simulator", e))?;

    let app = App::open(config, Arc::new(SystemClock)).await?;
    let password = hex::encode(rand::random::<[u8; 6]>());
    let admin = app
        .users
        .create(
            "admin".into(),
            &password,
            Role::Admin,
            CreateMode::FirstUser,
        )
        .await?;
    let (_, login) = app.tokens.issue(&admin, 0)?;
    let cams = add_cameras(&app, sim_addr, &login).await?;

    let listener = tokio::net::TcpListener::bind(app.config.listen_addr)
        .await
        .map_err(|e| Error::failed(format!("cannot listen on {}", app.config.listen_addr), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::failed("listener has no address", e))?;
    welcome(&format!("http://{addr}"), &dir, &password, sim_addr, &cams);
    crate::api::server::serve(app.clone(), listener, None, app::shutdown_signal()).await;
    app.streams
        .stop_all(std::time::Duration::from_secs(5))
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The demo's cameras, channels of one simulated DVR (the first with audio), each pulled
/// at once; their ids with a player token each.
async fn add_cameras(
    app: &App,
    sim_addr: std::net::SocketAddr,
    login: &crate::auth::jwt::Claims,
) -> Result<Vec<(String, String)>> {
    let mut cams = Vec::new();
    for ch in 1..=CAMERAS {
        let path = if ch == 1 {
            format!("demo{ch}/audio")
        } else {
            format!("demo{ch}")
        };
        let rtsp = format!("rtsp://admin:camsim@{sim_addr}/{path}");
        let cam = app
            .cameras
            .add(CameraRequest {
                ip: Some("127.0.0.1".into()),
                channel: Some(ch),
                name: Some(format!("Demo camera {ch}")),
                port: Some(sim_addr.port()),
                rtsp_url: Some(rtsp),
                ..Default::default()
            })
            .await?;
        let src = Source::of(&app.sealer, &cam)?;
        app.streams.start(src, true)?;
        cams.push((
            cam.id.clone(),
            app.tokens
                .issue_player(login, PlayerScope::Camera, &cam.id, None)?,
        ));
    }
    Ok(cams)
}

/// What the newcomer reads: where the demo runs, how to log in, a link per camera.
fn welcome(
    base: &str,
    dir: &std::path::Path,
    password: &str,
    sim_addr: std::net::SocketAddr,
    cams: &[(String, String)],
) {
    if !crate::api::assets::has_page() {
        println!("vigia demo is running at {base}");
    } else {
        println!("vigia demo: open {base}/ in a browser");
    }
    println!("  log in: admin / {password}");
    println!(
        "  Ctrl-C stops it and removes {} (its store and recordings)",
        dir.display()
    );
    println!(
        "  {CAMERAS} simulated cameras, channels of a DVR at 127.0.0.1 (rtsp://{sim_addr}/…):"
    );
    let urls: Vec<String> = cams
        .iter()
        .map(|(id, t)| format!("{base}/api/cameras/streams/{id}/index.m3u8?t={t}"))
        .collect();
    for ((id, _), u) in cams.iter().zip(&urls) {
        println!("    {id:<14} {u}");
    }
    println!("  watch:  ffplay -fflags nobuffer \"{}\"", urls[0]);
    println!("  or:     curl -s \"{}\"", urls[0]);
    println!(
        "  API:    curl -s -XPOST {base}/api/auth/login -d '{{\"username\":\"admin\",\"password\":\"{password}\"}}'"
    );
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "vigia-demo-{}",
        hex::encode(rand::random::<[u8; 4]>())
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::failed(format!("cannot create {}", dir.display()), e))?;
    Ok(dir)
}
