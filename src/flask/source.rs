//! Reading the old Flask backend's PostgreSQL database (SQLAlchemy's tables `users`,
//! `cameras`, `recordings`), by column name: extra columns are ignored, optional ones may be
//! missing, PostgreSQL enums and `timestamp without time zone` (UTC) are read through casts.
//! Nothing is written there.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::error::{Error, Result};

/// A row of the old `users` table.
#[derive(Debug, Clone)]
pub struct OldUser {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: Option<DateTime<Utc>>,
}

/// A row of the old `cameras` table.
#[derive(Debug, Clone, Default)]
pub struct OldCamera {
    pub id: i64,
    pub ip: String,
    pub name: Option<String>,
    /// The old `type` column (free text: "ip", "dvr", …).
    pub kind: Option<String>,
    pub brand: Option<String>,
    pub channel: Option<i64>,
    pub port: Option<i64>,
    pub is_active: Option<bool>,
    pub last_seen: Option<DateTime<Utc>>,
    /// `rtsp_url_encrypted`: a Fernet token of the RTSP URL.
    pub token: Option<String>,
    pub user_id: Option<i64>,
}

/// A row of the old `recordings` table.
#[derive(Debug, Clone, Default)]
pub struct OldRecording {
    pub id: i64,
    pub camera_ip: String,
    pub user_id: Option<i64>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// The absolute path ffmpeg wrote, on the old machine.
    pub file_path: String,
    pub duration_sec: Option<f64>,
}

/// Everything the import reads.
#[derive(Debug, Clone, Default)]
pub struct OldData {
    pub users: Vec<OldUser>,
    pub cameras: Vec<OldCamera>,
    pub recordings: Vec<OldRecording>,
}

/// How a column is read: its SQL cast (timestamps become seconds since the epoch).
#[derive(Clone, Copy)]
enum Col {
    Int,
    Text,
    Bool,
    Time,
    Float,
}

/// A `SELECT` of `wanted` columns from `table`: each present one cast, each missing one NULL
/// (a missing `required` one is an error naming it).
async fn select(
    db: &Client,
    table: &str,
    wanted: &[(&str, Col)],
    required: &[&str],
) -> Result<Vec<tokio_postgres::Row>> {
    let present: HashSet<String> = db
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )
        .await
        .map_err(|e| Error::failed(format!("cannot read the columns of '{table}'"), e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if present.is_empty() {
        return Err(Error::bad_request(format!(
            "the old database has no table '{table}' (is --from the Flask backend's database?)"
        )));
    }
    if let Some(missing) = required.iter().find(|c| !present.contains(**c)) {
        return Err(Error::bad_request(format!(
            "the old table '{table}' has no column '{missing}'"
        )));
    }
    let list: Vec<String> = wanted
        .iter()
        .map(|(name, col)| {
            let cast = match col {
                Col::Int => "int8",
                Col::Text => "text",
                Col::Bool => "bool",
                Col::Time | Col::Float => "float8",
            };
            match (present.contains(*name), col) {
                (false, _) => format!("NULL::{cast}"),
                (true, Col::Time) => format!("EXTRACT(EPOCH FROM \"{name}\")::float8"),
                (true, _) => format!("\"{name}\"::{cast}"),
            }
        })
        .collect();
    let sql = format!("SELECT {} FROM \"{table}\" ORDER BY 1", list.join(", "));
    db.query(sql.as_str(), &[])
        .await
        .map_err(|e| Error::failed(format!("cannot read '{table}'"), e))
}

fn time(row: &tokio_postgres::Row, i: usize) -> Option<DateTime<Utc>> {
    let secs: Option<f64> = row.get(i);
    secs.and_then(|s| DateTime::from_timestamp_micros((s * 1e6).round() as i64))
}

/// Reads the three tables (a database without `recordings` has none).
pub async fn read(db: &Client) -> Result<OldData> {
    use Col::*;
    let users = select(
        db,
        "users",
        &[
            ("id", Int),
            ("username", Text),
            ("password_hash", Text),
            ("role", Text),
            ("created_at", Time),
        ],
        &["id", "username", "password_hash"],
    )
    .await?
    .iter()
    .map(|r| OldUser {
        id: r.get(0),
        username: r.get::<_, Option<String>>(1).unwrap_or_default(),
        password_hash: r.get::<_, Option<String>>(2).unwrap_or_default(),
        role: r
            .get::<_, Option<String>>(3)
            .unwrap_or_else(|| "user".into()),
        created_at: time(r, 4),
    })
    .collect();
    let cameras = select(
        db,
        "cameras",
        &[
            ("id", Int),
            ("ip", Text),
            ("name", Text),
            ("type", Text),
            ("brand", Text),
            ("channel", Int),
            ("port", Int),
            ("is_active", Bool),
            ("last_seen", Time),
            ("rtsp_url_encrypted", Text),
            ("user_id", Int),
        ],
        &["id", "ip"],
    )
    .await?
    .iter()
    .map(|r| OldCamera {
        id: r.get(0),
        ip: r.get::<_, Option<String>>(1).unwrap_or_default(),
        name: r.get(2),
        kind: r.get(3),
        brand: r.get(4),
        channel: r.get(5),
        port: r.get(6),
        is_active: r.get(7),
        last_seen: time(r, 8),
        token: r.get(9),
        user_id: r.get(10),
    })
    .collect();
    let wanted = [
        ("id", Int),
        ("camera_ip", Text),
        ("user_id", Int),
        ("start_time", Time),
        ("end_time", Time),
        ("file_path", Text),
        ("duration_sec", Float),
    ];
    let recordings =
        match select(db, "recordings", &wanted, &["id", "camera_ip", "file_path"]).await {
            Ok(rows) => rows
                .iter()
                .map(|r| OldRecording {
                    id: r.get(0),
                    camera_ip: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    user_id: r.get(2),
                    start_time: time(r, 3),
                    end_time: time(r, 4),
                    file_path: r.get::<_, Option<String>>(5).unwrap_or_default(),
                    duration_sec: r.get(6),
                })
                .collect(),
            Err(e) if e.message.contains("no table") => Vec::new(),
            Err(e) => return Err(e),
        };
    Ok(OldData {
        users,
        cameras,
        recordings,
    })
}
