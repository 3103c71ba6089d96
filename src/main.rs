//! The `vigia` binary: parse the command line, validate settings, start logging, run.

use clap::{Parser, Subcommand};
use vigia::config::{Config, ServeArgs, EXIT_CONFIG};

#[derive(Parser)]
#[command(name = "vigia", version, about = "A lean NVR service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the NVR service.
    Serve(ServeArgs),
    /// Try vigia without cameras: simulated cameras, a server on a throwaway store, an admin.
    Demo(ServeArgs),
    /// Simulated RTSP cameras playing pre-encoded fixtures (load and fault tests, demos).
    Camsim(CamsimArgs),
    /// Scan a network range for cameras once and print what was found (JSON), as
    /// `GET /api/cameras/discover` does; SCAN_PORTS and ONVIF_TIMEOUT apply.
    Discover(DiscoverArgs),
    /// Store maintenance.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

// Parsed once at start, as `Command`.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum StoreCommand {
    /// Copy this appliance's embedded data (DATA_DIR) into PostgreSQL, idempotently.
    Migrate(MigrateArgs),
    /// Copy the old Flask backend's users, cameras and recordings into this vigia's store
    /// (redb, or PostgreSQL with DATABASE_URL), in one transaction, idempotently. Stop vigia
    /// first when it uses the embedded store.
    ImportFlask(ImportFlaskArgs),
}

#[derive(clap::Args)]
struct ImportFlaskArgs {
    /// The old backend's database: postgres://user:pass@host:port/db.
    #[arg(long)]
    from: String,
    /// The old backend's SECRET_KEY (its camera URLs are Fernet tokens keyed from it).
    #[arg(long, env = "OLD_SECRET_KEY", hide_env_values = true)]
    old_secret_key: String,
    /// The Fernet key itself (url-safe base64 of 32 bytes), when it was not made from
    /// SECRET_KEY.
    #[arg(long, env = "OLD_FERNET_KEY", hide_env_values = true)]
    fernet_key: Option<String>,
    /// Where the old recordings are now (found by the tail of their old paths).
    #[arg(long)]
    recordings_from: Option<std::path::PathBuf>,
    /// Print what would be imported and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// This vigia's own settings (DATA_DIR, DATABASE_URL, SECRET_KEY, RECORDINGS_DIR, …).
    #[command(flatten)]
    settings: ServeArgs,
}

#[cfg(feature = "postgres")]
fn import_flask(a: ImportFlaskArgs) -> i32 {
    let from = vigia::config::database(&ServeArgs {
        database_url: Some(a.from.clone()),
        ..Default::default()
    });
    let (from, config) = match (from, Config::from_args(&a.settings)) {
        (Ok(Some(from)), Ok(config)) => (from, config),
        (Ok(None), _) => {
            eprintln!("vigia: --from must name the old PostgreSQL database (postgres://…)");
            return EXIT_CONFIG;
        }
        (Err(e), _) => {
            eprintln!("vigia: --from {}", e.message);
            return EXIT_CONFIG;
        }
        (_, Err(e)) => {
            eprintln!("vigia: {e}");
            return EXIT_CONFIG;
        }
    };
    let opts = vigia::flask::Options {
        old_secret_key: a.old_secret_key,
        fernet_key: a.fernet_key.filter(|k| !k.is_empty()),
        recordings_from: a.recordings_from,
    };
    match runtime().block_on(vigia::flask::run(&config, &from, &opts, a.dry_run)) {
        Ok(report) => {
            print!("{report}");
            0
        }
        Err(e) => {
            eprintln!("vigia: import failed, nothing was imported: {}", e.message);
            match e.kind {
                vigia::error::Kind::BadRequest => EXIT_CONFIG,
                _ => 1,
            }
        }
    }
}

#[cfg(not(feature = "postgres"))]
fn import_flask(_: ImportFlaskArgs) -> i32 {
    eprintln!("vigia: import-flask reads PostgreSQL: build vigia with --features postgres");
    EXIT_CONFIG
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// Target database: postgres://user:pass@host:port/db (or DATABASE_URL).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    to: String,
    /// The appliance's data directory (holds vigia.redb and secret_key).
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    data_dir: std::path::PathBuf,
    /// The appliance's key, when it is not in DATA_DIR/secret_key.
    #[arg(long, env = "SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// PEM CA certificate(s) of the PostgreSQL server (TLS).
    #[arg(long, env = "DB_CA_CERT")]
    db_ca_cert: Option<String>,
}

#[derive(clap::Args)]
struct DiscoverArgs {
    /// IPv4 CIDR to scan, at most a /22.
    range: String,
    /// User name for the devices (RTSP and ONVIF).
    #[arg(long)]
    username: Option<String>,
    /// Password for the devices (prefer the environment to the command line).
    #[arg(long, env = "DISCOVER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[command(flatten)]
    settings: ServeArgs,
}

fn discover(a: DiscoverArgs) -> i32 {
    let config = match Config::from_args(&a.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vigia: {e}");
            return EXIT_CONFIG;
        }
    };
    let range = match vigia::discovery::Range::parse(&a.range) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigia discover: {e}");
            return 2;
        }
    };
    let login = a.username.map(|username| vigia::discovery::Login {
        username,
        password: a.password.unwrap_or_default(),
    });
    // a one-off scan keeps nothing
    vigia::camera::templates::configure(config.rtsp_templates.clone());
    let d = vigia::discovery::Discovery::new(vigia::discovery::Settings {
        ttl: std::time::Duration::ZERO,
        ..vigia::app::discovery_settings(&config)
    });
    // credentials found are kept only for this process
    let sealer = vigia::camera::seal::Sealer::new(&rand_key());
    runtime().block_on(async move {
        let report = d.scan(&sealer, &range, login, true).await;
        match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(e) => {
                eprintln!("vigia discover: cannot write the report: {e}");
                1
            }
        }
    })
}

fn rand_key() -> Vec<u8> {
    let mut k = vec![0u8; 32];
    for b in k.iter_mut() {
        *b = rand::random();
    }
    k
}

/// A port scan holds a socket per attempt in flight: take the hard open-file limit (a
/// systemd service starts with a soft limit of 1024).
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65536).max(soft), hard);
        }
    }
}

#[derive(clap::Args)]
struct CamsimArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8554")]
    listen: std::net::SocketAddr,
    /// User name cameras with the `auth` option require (Digest).
    #[arg(long, default_value = "admin")]
    user: String,
    /// Password cameras with the `auth` option require.
    #[arg(long, default_value = "camsim")]
    password: String,
    /// H.264 Annex B fixture with access unit delimiters (default: the embedded 360p one).
    #[arg(long)]
    fixture: Option<std::path::PathBuf>,
    /// AAC ADTS fixture (default: the embedded one).
    #[arg(long)]
    audio_fixture: Option<std::path::PathBuf>,
    /// Print SESSION/END lines for every RTSP session.
    #[arg(long)]
    events: bool,
    /// Serve only this path (with its query), e.g. a brand's stream path; repeatable.
    /// Other paths answer 404.
    #[arg(long)]
    only: Vec<String>,
    /// Require Digest authentication on every path.
    #[arg(long)]
    auth: bool,
}

fn camsim(a: CamsimArgs) -> i32 {
    use vigia::camsim::{fixture, Camsim, Media};
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let media = (|| -> Result<Media, String> {
        let main = match &a.fixture {
            Some(p) => fixture::Video::parse(&read(p)?)?,
            None => fixture::Video::parse(fixture::embedded::H264_360P)?,
        };
        let alt = fixture::Video::parse(fixture::embedded::H264_180P)?;
        let audio = match &a.audio_fixture {
            Some(p) => fixture::Audio::parse_adts(&read(p)?)?,
            None => fixture::Audio::parse_adts(fixture::embedded::AAC_48K)?,
        };
        Ok(Media::new(&main, &alt, &audio))
    })();
    let media = match media {
        Ok(m) => m,
        Err(e) => {
            eprintln!("vigia camsim: bad fixture: {e}");
            return EXIT_CONFIG;
        }
    };
    let only = (!a.only.is_empty()).then_some(a.only);
    let sim = Camsim::restricted(media, &a.user, &a.password, a.events, only, a.auth);
    runtime().block_on(async move {
        match vigia::camsim::start(sim, a.listen).await {
            Ok(addr) => {
                println!("READY {}", addr.port());
                eprintln!("vigia camsim: cameras at rtsp://{addr}/<name>[/audio][/dropN][/stallN][/switchN][/auth]");
                std::future::pending::<()>().await;
                0
            }
            Err(e) => {
                eprintln!("vigia camsim: cannot listen on {}: {e}", a.listen);
                1
            }
        }
    })
}

/// The async runtime, one worker per core.
fn runtime() -> tokio::runtime::Runtime {
    build_runtime(tokio::runtime::Builder::new_multi_thread())
}

/// The server's runtime: `workers` threads (`WORKER_THREADS`, default 1). One is enough for
/// 128 cameras with players (~0.3 core) and costs ~25 % less CPU than one per core at 32: a
/// second idle worker is woken to steal every newly ready task, a thread switch each time.
/// With one, the runtime is tokio's current-thread scheduler on the main thread (no work
/// stealing, no scheduler statistics to keep). Disk writes and password hashing run on the
/// blocking pool, beside it.
fn server_runtime(workers: usize) -> tokio::runtime::Runtime {
    if workers == 1 {
        return build_runtime(tokio::runtime::Builder::new_current_thread());
    }
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(workers);
    build_runtime(b)
}

fn build_runtime(mut b: tokio::runtime::Builder) -> tokio::runtime::Runtime {
    b.enable_all().build().unwrap_or_else(|e| {
        eprintln!("vigia: cannot start the runtime: {e}");
        std::process::exit(1);
    })
}

#[cfg(feature = "postgres")]
fn migrate(a: MigrateArgs) -> i32 {
    let serve = ServeArgs {
        database_url: Some(a.to.clone()),
        db_ca_cert: a.db_ca_cert.clone(),
        secret_key: Some("x".repeat(32)),
        ..Default::default()
    };
    let db = match Config::from_args(&serve).map(|c| c.database) {
        Ok(Some(db)) => db,
        Ok(None) => {
            eprintln!("vigia: --to must name a PostgreSQL database (postgres://…)");
            return EXIT_CONFIG;
        }
        Err(e) => {
            eprintln!("vigia: {e}");
            return EXIT_CONFIG;
        }
    };
    let key_file = a.data_dir.join("secret_key");
    let secret = match a.secret_key.filter(|k| !k.is_empty()) {
        Some(k) => k.into_bytes(),
        None => match std::fs::read_to_string(&key_file) {
            Ok(k) => k.trim().as_bytes().to_vec(),
            Err(e) => {
                eprintln!(
                    "vigia: cannot read {}: {e} (set SECRET_KEY)",
                    key_file.display()
                );
                return EXIT_CONFIG;
            }
        },
    };
    match runtime().block_on(vigia::store::migrate_redb_to_postgres(
        &a.data_dir,
        &secret,
        &db,
    )) {
        Ok(report) => {
            println!("copied {} into PostgreSQL:\n{report}", a.data_dir.display());
            println!(
                "Start every box with DATABASE_URL set and SECRET_KEY set to this appliance's key{}.",
                if key_file.exists() { format!(" (the contents of {})", key_file.display()) } else { String::new() }
            );
            0
        }
        Err(e) => {
            eprintln!("vigia: migration failed, nothing was copied: {}", e.chain());
            match e.kind {
                vigia::store::Kind::Setting => EXIT_CONFIG,
                _ => 1,
            }
        }
    }
}

#[cfg(not(feature = "postgres"))]
fn migrate(_: MigrateArgs) -> i32 {
    eprintln!("vigia: this vigia was built without PostgreSQL support (cargo feature `postgres`)");
    EXIT_CONFIG
}

fn init_logging() {
    use tracing_subscriber::filter::Targets;
    // LOG_LEVEL (or RUST_LOG): `warn`, `info,vigia=debug`, …; a bad one falls back to info
    let filter = ["LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // LOG_FORMAT: `text` (default: one line for people, and journald) or `json` (one object
    // per line for a log shipper: the event's fields at the top level — camera, recording,
    // rid — and the request's span, with its `rid`, under `span`)
    let json = match std::env::var("LOG_FORMAT").unwrap_or_default().trim() {
        "" | "text" => false,
        "json" => true,
        other => {
            eprintln!("vigia: invalid LOG_FORMAT: must be text or json, got '{other}'");
            std::process::exit(EXIT_CONFIG);
        }
    };
    let text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    let json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(filter)
        .init();
}

/// glibc's malloc, tuned: a fixed mmap threshold hands large freed blocks straight back to the
/// kernel (argon2's 19 MiB are mapped by `auth::password` itself now; every live-view segment
/// is one buffer at least this large, so a segment leaving the window is unmapped at once), and
/// two arenas are plenty for a service whose threads mostly wait.
/// mimalloc was measured (~20-30 % less CPU with players) and not kept: with tokio's blocking
/// pool at ~76 threads in the 3-minute soak, its per-thread heaps kept RSS rising (+8 MiB in
/// the last 1.5 minutes) where glibc stays flat. An operator's `GLIBC_TUNABLES` wins: with it
/// set, nothing is changed here.
fn tune_malloc() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called once, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, vigia::media::segbuf::MIN as i32);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() {
    tune_malloc();
    raise_nofile();
    // A .env in the working directory fills in variables the environment does not set.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("vigia: cannot read .env: {e}");
            std::process::exit(EXIT_CONFIG);
        }
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = match Config::from_args(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("vigia: {e}");
                    std::process::exit(EXIT_CONFIG);
                }
            };
            init_logging();
            let unused = vigia::config::unused_flask_settings(std::env::vars());
            if !unused.is_empty() {
                tracing::warn!(
                    settings = %unused.join(", "),
                    "settings of the Flask backend are set but unused: vigia pulls and remuxes in-process (no ffmpeg) and keeps live HLS in RAM; they are ignored"
                );
            }
            if let Err(e) = server_runtime(config.worker_threads).block_on(vigia::app::run(config))
            {
                tracing::error!("{e}");
                std::process::exit(match e {
                    vigia::error::StartError::Config(_) => EXIT_CONFIG,
                    vigia::error::StartError::Failed(_) => 1,
                });
            }
        }
        Command::Camsim(args) => std::process::exit(camsim(args)),
        Command::Discover(args) => {
            init_logging();
            std::process::exit(discover(args))
        }
        Command::Demo(mut args) => {
            // a demo listens on loopback unless told otherwise
            args.listen_addr
                .get_or_insert_with(|| "127.0.0.1:5000".into());
            let config = match Config::from_args(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("vigia: {e}");
                    std::process::exit(EXIT_CONFIG);
                }
            };
            init_logging();
            if let Err(e) = server_runtime(config.worker_threads).block_on(vigia::demo::run(config))
            {
                tracing::error!("{}", e.message);
                std::process::exit(1);
            }
        }
        Command::Store {
            command: StoreCommand::Migrate(args),
        } => {
            init_logging();
            std::process::exit(migrate(args));
        }
        Command::Store {
            command: StoreCommand::ImportFlask(args),
        } => {
            init_logging();
            std::process::exit(import_flask(args));
        }
    }
}
