//! Wiring: data directory and secret key, the store, the auth services, the HTTP listener
//! (plain or rustls), background upkeep, and the shutdown path.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::api::App;
use crate::auth::jwt::Tokens;
use crate::auth::limiter::LoginLimiter;
use crate::auth::password::Passwords;
use crate::camera::seal::Sealer;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result, StartError};
use crate::media::hls::HlsConfig;
use crate::media::recordings::{RecordingConfig, Recordings};
use crate::media::streams::Streams;
use crate::store::{self, DynStore};
use crate::system::watchdog::{disk_free_note, Health, STALL};

/// Creates `DATA_DIR` when missing and returns the key in use: `SECRET_KEY`, or the one kept in
/// `DATA_DIR/secret_key` (made on first start).
pub fn open_data_dir(config: &Config) -> Result<Vec<u8>> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        Error::failed(
            format!("cannot create DATA_DIR {}", config.data_dir.display()),
            e,
        )
    })?;
    match &config.secret_key {
        Some(k) => Ok(k.clone()),
        None => load_or_create_secret(&config.data_dir),
    }
}

/// Reads `DATA_DIR/secret_key`, creating it (256 random bits, mode 0600) on first start.
pub fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>> {
    let path = data_dir.join("secret_key");
    let io = |what: &str, e: std::io::Error| {
        Error::failed(format!("cannot {what} {}", path.display()), e)
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            let key = hex::encode(rand::random::<[u8; 32]>());
            f.write_all(key.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| io("write", e))?;
            info!(path = %path.display(), "generated a new secret key");
            Ok(key.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::metadata(&path).map_err(|e| io("stat", e))?;
            if meta.permissions().mode() & 0o077 != 0 {
                warn!(path = %path.display(), "secret key file was readable by others; setting mode 0600");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io("chmod", e))?;
            }
            let key = std::fs::read(&path).map_err(|e| io("read", e))?;
            let key = String::from_utf8_lossy(&key).trim().as_bytes().to_vec();
            if key.len() < 32 {
                return Err(Error::internal(format!(
                    "{} holds fewer than 32 bytes; delete it to generate a new key",
                    path.display()
                )));
            }
            Ok(key)
        }
        Err(e) => Err(io("create", e)),
    }
}

impl App {
    /// Opens the data directory and store and builds the services.
    pub async fn open(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> std::result::Result<Arc<App>, StartError> {
        let secret = open_data_dir(&config)?;
        let store: DynStore = store::open(config.database.as_ref(), &config.data_dir).await?;
        check_key(store.as_ref(), &secret, config.database.is_some()).await?;
        let streams = Streams::new(
            config.max_streams as usize,
            Duration::from_secs(config.stream_timeout_secs),
            hls_config(&config),
        );
        let recordings = Recordings::new(store.clone(), streams.clone(), recording_config(&config));
        let tasks: Arc<crate::system::tasks::Tasks> = Arc::default();
        let sealer = Sealer::new(&secret);
        crate::camera::templates::configure(config.rtsp_templates.clone());
        let handles = crate::fleet::Handles {
            store: store.clone(),
            streams: streams.clone(),
            recordings: recordings.clone(),
            sealer: sealer.clone(),
            tasks: tasks.clone(),
        };
        let fleet = fleet(&config, handles)?;
        let discovery = Arc::new(crate::discovery::Discovery::new(discovery_settings(
            &config,
        )));
        let cameras = Arc::new(crate::services::cameras::Cameras {
            store: store.clone(),
            sealer: sealer.clone(),
            clock: clock.clone(),
            fleet: fleet.clone(),
            streams: streams.clone(),
            recordings: recordings.clone(),
            discovery: discovery.clone(),
        });
        let passwords = Passwords::new()?;
        let users = crate::services::users::Users {
            store: store.clone(),
            passwords: passwords.clone(),
            cameras: cameras.clone(),
            // asked once here, so that /health on a claimed box never asks the store
            claimed: (store.count_users().await? > 0).into(),
        };
        Ok(Arc::new(App {
            recordings,
            fleet,
            discovery,
            cameras,
            users,
            tokens: Tokens::new(
                &secret,
                config.jwt_algorithm,
                config.jwt_expiration_secs,
                clock.clone(),
            ),
            passwords,
            limiter: LoginLimiter::new(clock.clone()),
            grants: crate::auth::grants::Grants::new(config.database.is_none()),
            connections: Default::default(),
            host_names: crate::api::host::own_names(&config, &crate::config::host_name()),
            lograte: Default::default(),
            sealer,
            streams,
            store,
            clock,
            config,
            started: Instant::now(),
            tasks,
        }))
    }
}

/// The live view's settings.
fn hls_config(config: &Config) -> HlsConfig {
    HlsConfig {
        low_latency: config.low_latency_hls,
        ..HlsConfig::default()
    }
}

/// This box in the fleet: its name, where other boxes send its cameras' requests, and an
/// instance id kept in `DATA_DIR`.
fn fleet(
    config: &Config,
    handles: crate::fleet::Handles,
) -> std::result::Result<Arc<crate::fleet::Fleet>, StartError> {
    Ok(crate::fleet::Fleet::new(
        config.node_name.clone(),
        config.node_url.clone().unwrap_or_else(|| {
            crate::config::default_node_url(config.listen_addr, config.tls.is_some())
        }),
        config.database.is_some(),
        Duration::from_secs(config.node_stale_secs),
        crate::fleet::instance_id(&config.data_dir)?,
        handles,
    ))
}

/// What the recordings need of the settings.
fn recording_config(config: &Config) -> RecordingConfig {
    RecordingConfig {
        root: config.recordings_dir.clone(),
        segment: Duration::from_secs(config.recording_segment_secs),
        sync_every: Duration::from_secs(config.recording_sync_secs),
        fragment: Duration::from_secs(1),
        min_free_bytes: config.min_free_disk_mb * 1024 * 1024,
        retention: config
            .retention_days
            .map(|d| Duration::from_secs(d * 86400)),
        node: config.node_name.clone(),
        shared: config.database.is_some(),
    }
}

/// What discovery needs of the settings (scans from the API keep their results `CACHE_TTL`).
pub fn discovery_settings(config: &Config) -> crate::discovery::Settings {
    crate::discovery::Settings {
        ports: config.scan_ports.clone(),
        onvif_timeout: Duration::from_secs(config.onvif_timeout_secs),
        ttl: Duration::from_secs(config.cache_ttl_secs),
        port_timeout: crate::discovery::port_scan::TIMEOUT,
        concurrency: crate::discovery::port_scan::concurrency(),
        rtsp_timeout: crate::discovery::rtsp_probe::TIMEOUT,
    }
}

/// Compares the key in use with the one the store was last opened with. Several boxes on one
/// database must share it (refuse to start otherwise); on an appliance a changed key only
/// makes stored camera credentials unreadable (warn).
async fn check_key(
    store: &dyn store::Store,
    secret: &[u8],
    shared: bool,
) -> std::result::Result<(), StartError> {
    let fp = store::key_fingerprint(secret);
    match store.key_fingerprint(&fp, !shared).await? {
        None => Ok(()),
        Some(_) if shared => Err(StartError::Config(
            "SECRET_KEY differs from the one the other boxes on this database use; every box must share it (tokens and sealed camera credentials depend on it)".into(),
        )),
        Some(_) => {
            warn!("SECRET_KEY changed since the store was last opened: old tokens are invalid and stored camera credentials must be entered again");
            Ok(())
        }
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::failed(format!("cannot read TLS_CERT {}", cert.display()), e))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::failed(format!("cannot read TLS_KEY {}", key.display()), e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failed("TLS setup failed", e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::failed("TLS_CERT and TLS_KEY do not fit", e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

impl Health for App {
    fn check(&self, store_timeout: Duration) -> BoxFuture<'_, std::result::Result<(), String>> {
        Box::pin(async move {
            match tokio::time::timeout(store_timeout, self.store.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("the store fails: {}", e.message)),
                Err(_) => return Err(format!("the store did not answer in {store_timeout:?}")),
            }
            let stalled = self.recordings.stalled(STALL);
            if let Some((cam, secs)) = stalled.first() {
                return Err(format!(
                    "{} recording(s) stalled: camera {cam} is live but nothing was written for {secs:.0} s",
                    stalled.len()
                ));
            }
            Ok(())
        })
    }

    fn status(&self) -> String {
        let c = &self.config;
        let dir = if c.recordings_dir.is_dir() {
            &c.recordings_dir
        } else {
            &c.data_dir
        };
        format!(
            "{} live, {} recording{}",
            self.streams.active(),
            self.recordings.running(),
            disk_free_note(dir)
        )
    }
}

/// Prunes expired revocations every hour; stops idle camera sessions every second.
fn spawn_upkeep(app: &Arc<App>) {
    let streams = app.streams.clone();
    app.tasks.spawn("idle sessions", async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            streams.reap();
        }
    });
    let a = app.clone();
    app.tasks.spawn("revocation pruning", async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match a.store.prune_revocations(a.clock.now()).await {
                Ok(0) => {}
                Ok(n) => info!(pruned = n, "pruned expired token revocations"),
                Err(e) => warn!(error = %e.chain(), "pruning revocations failed"),
            }
        }
    });
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(config: Config) -> std::result::Result<(), StartError> {
    let notifier = Arc::new(crate::system::notify::Notifier::from_env());
    let tls = match &config.tls {
        Some((c, k)) => Some(tls_acceptor(c, k)?),
        None => None,
    };
    let app = App::open(config, Arc::new(SystemClock)).await?;
    // bound now, accepting once recovery is done (connections wait in the backlog)
    let listener = TcpListener::bind(app.config.listen_addr)
        .await
        .map_err(|e| Error::failed(format!("cannot listen on {}", app.config.listen_addr), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::failed("listener has no address", e))?;
    if app.config.node_url.is_none() {
        app.fleet
            .set_url(crate::config::default_node_url(addr, tls.is_some()));
    }
    // a second box with this NODE_NAME must not start (it would record the same cameras)
    app.fleet.join().await?;
    app.fleet.claim().await?;
    app.recordings.recover().await.map_err(Error::from)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%addr, "listening on {scheme}://{addr}");
    // store open, crash recovery done, listener bound: ready
    let health: Arc<dyn Health> = app.clone();
    notifier.ready(&health.status());
    crate::system::watchdog::spawn(health, notifier.clone(), &app.tasks);
    spawn_upkeep(&app);
    app.fleet.spawn();
    app.tasks.spawn(
        "disk watcher",
        app.recordings.clone().watch(Duration::from_secs(1)),
    );
    app.recordings.resume_all(&app.sealer, &app.tasks).await;
    app.tasks.spawn(
        "unknown files report",
        app.recordings.clone().report_unknown_files(),
    );
    let n2 = notifier.clone();
    let stop = async move {
        shutdown_signal().await;
        n2.stopping();
    };
    // stop accepting, let in-flight requests finish, then close every recording (last
    // fragment written, rows final) and TEARDOWN every camera session: bounded in time
    crate::api::server::serve(app.clone(), listener, tls, stop).await;
    // first what could start, write or beat again (resumes, hand-overs, the disk watcher, the
    // heartbeat), then the recordings, then the sessions; the node is marked down last, so
    // another box takes its cameras only once their files here are closed
    app.tasks.shutdown(Duration::from_secs(5)).await;
    app.recordings
        .stop_all(crate::media::recordings::SHUTDOWN)
        .await;
    app.streams.stop_all(Duration::from_secs(5)).await;
    app.fleet.leave().await;
    info!("stopped");
    Ok(())
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (term, int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            // without handlers the default action (exit) still stops the process
            warn!(error = %e, "cannot handle SIGTERM/SIGINT: a signal ends vigia without a clean stop");
            return std::future::pending().await;
        }
    };
    let (mut term, mut int) = (term, int);
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
}
