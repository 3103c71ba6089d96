//! Fills a store with recording rows for benchmarks: `N` finished recordings spread over the
//! last `N` minutes across 16 cameras, written with one `import` (one transaction).
//!
//! `cargo run --release --features postgres --example seed_recordings -- <DATA_DIR | postgres://…> <N>`

use std::sync::Arc;

use chrono::{Duration, Utc};
use vigia::store::{Dump, DynStore, Recording, RecordingStatus};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (target, n) = match &args[1..] {
        [t, n] => (t.clone(), n.parse::<i64>().expect("count")),
        _ => panic!("usage: seed_recordings <DATA_DIR | postgres://…> <count>"),
    };
    let store: DynStore = if target.starts_with("postgres") {
        #[cfg(feature = "postgres")]
        {
            let db = vigia::store::DbConfig {
                location: vigia::store::DbLocation::Url(target.clone()),
                ca_cert: None,
                require_tls: None,
                pool_size: 4,
            };
            Arc::new(
                vigia::store::postgres::PgStore::connect(&db)
                    .await
                    .expect("connect"),
            )
        }
        #[cfg(not(feature = "postgres"))]
        panic!("build with --features postgres")
    } else {
        Arc::new(
            vigia::store::redb::RedbStore::open(&std::path::Path::new(&target).join("vigia.redb"))
                .expect("open"),
        )
    };
    // the rows belong to the box that will serve them (NODE_NAME, default the host name)
    let node = std::env::var("NODE_NAME").unwrap_or_else(|_| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
    });
    let now = Utc::now();
    let mut dump = Dump::default();
    for i in 1..=n {
        let start = now - Duration::minutes(n - i + 1);
        let cam = format!("127.0.1.{}", i % 16 + 1);
        dump.recordings.push(Recording {
            id: 1_000_000 + i,
            camera_id: cam.clone(),
            user_id: Some(1),
            path: format!("{cam}/seed/{i}.mp4"),
            start_time: start,
            end_time: Some(start + Duration::seconds(60)),
            duration_sec: 60.0,
            file_size: 15_000_000,
            status: RecordingStatus::Completed,
            continuous: true,
            note: None,
            node: node.clone(),
        });
    }
    let t = std::time::Instant::now();
    let rep = store.import(&dump).await.expect("import");
    println!(
        "seeded {} recordings in {:.1} s",
        rep.recordings.0,
        t.elapsed().as_secs_f64()
    );
}
