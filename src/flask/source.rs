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

/// The rows of one old table, read cell by cell with an error that names the column (a NULL
/// id or a value of another type is bad input, not a panic).
struct Rows {
    table: &'static str,
    names: Vec<&'static str>,
    rows: Vec<tokio_postgres::Row>,
}

impl Rows {
    fn at<'a, T: tokio_postgres::types::FromSql<'a>>(
        &self,
        row: &'a tokio_postgres::Row,
        i: usize,
    ) -> Result<T> {
        row.try_get(i).map_err(|e| {
            Error::failed(
                format!(
                    "the old table '{}' has an unusable value in column '{}'",
                    self.table, self.names[i]
                ),
                e,
            )
        })
    }

    /// Text, empty when NULL.
    fn text(&self, row: &tokio_postgres::Row, i: usize) -> Result<String> {
        Ok(self.at::<Option<String>>(row, i)?.unwrap_or_default())
    }

    /// A time read as seconds since the epoch (`None`: NULL or out of range).
    fn time(&self, row: &tokio_postgres::Row, i: usize) -> Result<Option<DateTime<Utc>>> {
        let secs: Option<f64> = self.at(row, i)?;
        Ok(secs.and_then(|s| DateTime::from_timestamp_micros((s * 1e6).round() as i64)))
    }

    fn map<T>(&self, f: impl Fn(&tokio_postgres::Row) -> Result<T>) -> Result<Vec<T>> {
        self.rows.iter().map(f).collect()
    }
}

/// A `SELECT` of `wanted` columns from `table`: each present one cast, each missing one NULL
/// (a missing `required` one is an error naming it). `None`: the database has no such table.
async fn select(
    db: &Client,
    table: &'static str,
    wanted: &[(&'static str, Col)],
    required: &[&str],
) -> Result<Option<Rows>> {
    let present: HashSet<String> = db
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )
        .await
        .map_err(|e| Error::failed(format!("cannot read the columns of '{table}'"), e))?
        .iter()
        .filter_map(|r| r.try_get(0).ok())
        .collect();
    if present.is_empty() {
        return Ok(None);
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
    let rows = db
        .query(sql.as_str(), &[])
        .await
        .map_err(|e| Error::failed(format!("cannot read '{table}'"), e))?;
    Ok(Some(Rows {
        table,
        names: wanted.iter().map(|(n, _)| *n).collect(),
        rows,
    }))
}

/// A table the import cannot do without.
fn needed(rows: Option<Rows>, table: &str) -> Result<Rows> {
    rows.ok_or_else(|| {
        Error::bad_request(format!(
            "the old database has no table '{table}' (is --from the Flask backend's database?)"
        ))
    })
}

/// Reads the three tables (a database without `recordings` has none).
pub async fn read(db: &Client) -> Result<OldData> {
    use Col::*;
    let users = needed(
        select(
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
        .await?,
        "users",
    )?;
    let users = users.map(|r| {
        Ok(OldUser {
            id: users.at(r, 0)?,
            username: users.text(r, 1)?,
            password_hash: users.text(r, 2)?,
            role: users
                .at::<Option<String>>(r, 3)?
                .unwrap_or_else(|| "user".into()),
            created_at: users.time(r, 4)?,
        })
    })?;
    let cameras = needed(
        select(
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
        .await?,
        "cameras",
    )?;
    let cameras = cameras.map(|r| {
        Ok(OldCamera {
            id: cameras.at(r, 0)?,
            ip: cameras.text(r, 1)?,
            name: cameras.at(r, 2)?,
            kind: cameras.at(r, 3)?,
            brand: cameras.at(r, 4)?,
            channel: cameras.at(r, 5)?,
            port: cameras.at(r, 6)?,
            is_active: cameras.at(r, 7)?,
            last_seen: cameras.time(r, 8)?,
            token: cameras.at(r, 9)?,
            user_id: cameras.at(r, 10)?,
        })
    })?;
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
        match select(db, "recordings", &wanted, &["id", "camera_ip", "file_path"]).await? {
            None => Vec::new(),
            Some(recs) => recs.map(|r| {
                Ok(OldRecording {
                    id: recs.at(r, 0)?,
                    camera_ip: recs.text(r, 1)?,
                    user_id: recs.at(r, 2)?,
                    start_time: recs.time(r, 3)?,
                    end_time: recs.time(r, 4)?,
                    file_path: recs.text(r, 5)?,
                    duration_sec: recs.at(r, 6)?,
                })
            })?,
        };
    Ok(OldData {
        users,
        cameras,
        recordings,
    })
}
