//! Several boxes (nodes) on one PostgreSQL database.
//!
//! Every camera belongs to one node (`cameras.node`), every recording file lives on one node
//! (`recordings.node`). A node pulls, serves and records only its own cameras; a media request
//! for another node's camera is answered `307` to the same path and query on that node's
//! `NODE_URL` (player tokens work there: all boxes share `SECRET_KEY`), or `503` naming the node
//! when its heartbeat is older than `NODE_STALE_SECONDS`. Ages are measured by the database's
//! clock, so boxes whose clocks disagree still agree on who is alive.
//!
//! Once a second each node writes its heartbeat and reads the camera table. A camera moved away
//! (an admin's `PUT /api/cameras/<id>` with `node`) has its recording stopped (the row says
//! where it went) and its session closed; a camera moved here whose continuous recording was
//! running starts recording as soon as the old node's row is closed. The database allows one
//! open recording row per camera (a unique partial index), so two nodes never record one
//! camera at once: the new owner waits for the old one, or, when the old owner's heartbeat is
//! stale, closes the dead node's row itself, saying so in the note.
//!
//! With the embedded store there is one node and nothing is shared: every camera is served
//! here whatever its `node` says, and nothing of this is written to disk.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::camera::seal::Sealer;
use crate::error::StartError;
use crate::media::recordings::Recordings;
use crate::media::streams::Streams;
use crate::store::{CameraPatch, DynStore, Node, NodeBeat, RecordingEnd, RecordingStatus};
use crate::system::tasks::Tasks;

/// What can go wrong in the fleet, in its own words; the API edge gives each a status (the
/// cause kept), `main` an exit code (`NameTaken` at start is a setting to change).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A node named in a request that this database does not know.
    #[error("{0}")]
    UnknownNode(String),
    /// A camera cannot be given to a node that is down.
    #[error("{0}")]
    TargetDown(String),
    /// The node that serves something cannot be sent to now; `retry_after` in seconds.
    #[error("{message}")]
    OwnerUnreachable {
        message: String,
        retry_after: Option<u64>,
    },
    /// Another running box has this box's `NODE_NAME`.
    #[error("{0}")]
    NameTaken(String),
    /// This box's instance id cannot be kept in `DATA_DIR`.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Media(#[from] crate::media::error::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The sentence with its causes, for a log line or a client.
    pub fn chain(&self) -> String {
        match self {
            Error::Media(e) => e.chain(),
            Error::Store(e) => e.chain(),
            e => e.to_string(),
        }
    }
}

/// At start, a name another running box has is a setting to change (exit 78), not a failure.
impl From<Error> for StartError {
    fn from(e: Error) -> StartError {
        match e {
            Error::NameTaken(m) => StartError::Config(m),
            e => StartError::Failed(e.into()),
        }
    }
}

/// A request for something another node serves goes there: `307` to `location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// "camera 10.0.0.5 is served by node b".
    pub message: String,
    pub location: String,
}

/// How often a node beats and looks at the camera table.
pub const TICK: Duration = Duration::from_secs(1);

/// What the fleet reads and drives on this box.
pub struct Handles {
    pub store: DynStore,
    pub streams: Arc<Streams>,
    pub recordings: Arc<Recordings>,
    /// Opens a camera's credentials to resume its recording here.
    pub sealer: Sealer,
    pub tasks: Arc<Tasks>,
}

/// This box's place in the fleet and what it last read about the others.
pub struct Fleet {
    pub me: String,
    /// `NODE_URL` (set once the listener is bound).
    url: RwLock<String>,
    /// Postgres mode: other boxes may share the store.
    pub shared: bool,
    pub stale: Duration,
    instance: String,
    started_at: DateTime<Utc>,
    /// The nodes as last read, and when.
    nodes: RwLock<(HashMap<String, Node>, Instant)>,
    /// Hand-overs in progress ("acquire/<camera>", "release/<camera>"), so a tick does not
    /// start a second one.
    busy: Marks,
    h: Handles,
}

impl Fleet {
    /// `instance` tells this box from another started with the same name by mistake; it is
    /// kept in `DATA_DIR`, so the same box restarting (even right after a crash) is itself.
    pub fn new(
        me: String,
        url: String,
        shared: bool,
        stale: Duration,
        instance: String,
        h: Handles,
    ) -> Arc<Fleet> {
        Arc::new(Fleet {
            me,
            url: RwLock::new(url),
            shared,
            stale,
            instance,
            started_at: Utc::now(),
            nodes: RwLock::new((HashMap::new(), Instant::now())),
            busy: Marks::default(),
            h,
        })
    }

    /// Every box that shares the store, as the store has them now.
    pub async fn nodes(&self) -> Result<Vec<Node>> {
        self.refresh().await
    }

    /// The owner a new camera gets: this node, unless the request names another live one.
    pub async fn owner_for_new(&self, asked: Option<&str>) -> Result<String> {
        match asked {
            None => Ok(self.me.clone()),
            Some(n) => self.check_target(n).await,
        }
    }

    /// A node a camera may be given to: known and alive. 400 otherwise, naming the nodes.
    pub async fn check_target(&self, name: &str) -> Result<String> {
        if name == self.me {
            return Ok(name.to_string());
        }
        if !self.shared {
            return Err(Error::UnknownNode(format!(
                "unknown node '{name}': this box ({}) uses the embedded store and serves every camera itself",
                self.me
            )));
        }
        let nodes = self.h.store.nodes().await?;
        match nodes.iter().find(|n| n.name == name) {
            Some(n) if n.age_secs <= self.stale.as_secs_f64() => Ok(name.to_string()),
            Some(n) => Err(Error::TargetDown(format!(
                "node '{name}' is down (no heartbeat for {:.0} s); give the camera to a running node",
                n.age_secs
            ))),
            None => Err(Error::UnknownNode(format!(
                "unknown node '{name}'; the nodes are: {}",
                nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Whether this box serves something on node `owner`: `None` here; the redirect to
    /// `owner`'s `NODE_URL` + `path_and_query`; or 503 when `owner` is down. `what` names the
    /// thing.
    pub async fn serve_here(
        &self,
        owner: &str,
        what: &str,
        path_and_query: &str,
    ) -> Result<Option<Redirect>> {
        if !self.shared || owner.is_empty() || owner == self.me {
            return Ok(None);
        }
        let mut found = self.cached(owner);
        if found.is_none() {
            // a node that registered since the last read
            self.refresh().await?;
            found = self.cached(owner);
        }
        let secure_here = self
            .url
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .starts_with("https://");
        match found {
            // a client of an https box would follow the redirect with its player token in clear
            Some((url, _)) if secure_here && !url.starts_with("https://") => {
                Err(Error::OwnerUnreachable {
                    message: format!(
                        "{what} belongs to node {owner}, which serves plain http while this box serves https; give node {owner} TLS_CERT and TLS_KEY (and an https NODE_URL)"
                    ),
                    retry_after: None,
                })
            }
            Some((url, age)) if age <= self.stale.as_secs_f64() => Ok(Some(Redirect {
                message: format!("{what} is served by node {owner}"),
                location: format!("{url}{path_and_query}"),
            })),
            Some((_, age)) => Err(Error::OwnerUnreachable {
                message: format!(
                    "{what} belongs to node {owner}, which has not been heard from for {age:.0} s; an admin can move its cameras to a running node (PUT /api/cameras/<camera> with {{\"node\": \"<name>\"}})"
                ),
                retry_after: Some(5),
            }),
            None => Err(Error::OwnerUnreachable {
                message: format!(
                    "{what} belongs to node {owner}, which has never registered with this database"
                ),
                retry_after: None,
            }),
        }
    }

    /// (url, seconds since its heartbeat) of a node as last read.
    fn cached(&self, name: &str) -> Option<(String, f64)> {
        let g = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        g.0.get(name)
            .map(|n| (n.url.clone(), n.age_secs + g.1.elapsed().as_secs_f64()))
    }

    async fn refresh(&self) -> Result<Vec<Node>> {
        let nodes = self.h.store.nodes().await?;
        let map = nodes.iter().map(|n| (n.name.clone(), n.clone())).collect();
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = (map, Instant::now());
        Ok(nodes)
    }

    /// Where other boxes send this box's cameras' requests.
    pub fn url(&self) -> String {
        self.url.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_url(&self, url: String) {
        *self.url.write().unwrap_or_else(|p| p.into_inner()) = url;
    }

    /// Writes this node's heartbeat. `NameTaken` when another running box has the name.
    pub async fn beat(&self) -> Result<()> {
        self.h
            .store
            .heartbeat(&NodeBeat {
                name: self.me.clone(),
                url: self.url(),
                instance: self.instance.clone(),
                started_at: self.started_at,
                live: self.h.streams.active() as u32,
                recording: self.h.recordings.running() as u32,
                version: env!("CARGO_PKG_VERSION").into(),
                stale_secs: self.stale.as_secs_f64(),
            })
            .await
            .map_err(|e| match e.kind {
                crate::store::Kind::Conflict => Error::NameTaken(e.chain()),
                _ => Error::Store(e),
            })
    }

    /// The first heartbeat at start: another running box with this name is a setting to change
    /// (two boxes would record the same cameras), not a failure to retry.
    pub async fn join(&self) -> std::result::Result<(), StartError> {
        Ok(self.beat().await?)
    }

    /// Says this box is leaving (a clean stop): the others answer 503 for its cameras at once
    /// instead of sending clients to a box that is gone.
    pub async fn leave(&self) {
        if let Err(e) = self.h.store.leave(&self.me, &self.instance).await {
            warn!(error = %e.chain(), "cannot mark this node as stopped");
        }
    }

    /// Whether a node is alive by the last read.
    pub fn alive(&self, name: &str) -> bool {
        name == self.me
            || self
                .cached(name)
                .is_some_and(|(_, age)| age <= self.stale.as_secs_f64())
    }

    /// Beats and reconciles once a second until the process ends.
    pub fn spawn(self: &Arc<Self>) {
        let fleet = self.clone();
        self.h.tasks.spawn("fleet heartbeat", async move {
            let mut owners: Option<HashMap<String, String>> = None;
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                let step = async {
                    fleet.beat().await?;
                    fleet.refresh().await?;
                    if fleet.shared {
                        fleet.reconcile(&mut owners).await?;
                    }
                    Ok::<_, Error>(())
                }
                .await;
                match step {
                    Ok(()) if failing => {
                        failing = false;
                        info!("fleet heartbeat works again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        warn!(error = %e.chain(), "fleet heartbeat failed (retrying every second)");
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// One look at the camera table: hands cameras that left this node over, takes the ones
    /// that came to it.
    async fn reconcile(
        self: &Arc<Self>,
        owners: &mut Option<HashMap<String, String>>,
    ) -> Result<()> {
        let me = &self.me;
        let cams = self.h.store.cameras().await?;
        let now: HashMap<String, String> = cams
            .iter()
            .map(|c| (c.id.clone(), c.node.clone()))
            .collect();
        // what runs here for a camera another node owns now
        let mut local: HashSet<String> = self.h.recordings.cameras().into_iter().collect();
        local.extend(self.h.streams.ids());
        for id in local {
            if let Some(owner) = now.get(&id).filter(|o| !o.is_empty() && *o != me) {
                let (f, owner) = (self.clone(), owner.clone());
                self.h.tasks.spawn(
                    "camera hand-over",
                    async move { f.release(&id, &owner).await },
                );
            }
        }
        if let Some(before) = owners.as_ref() {
            for c in cams.iter().filter(|c| &c.node == me && c.is_recording) {
                let came = before.get(&c.id).is_some_and(|o| o != me);
                if came {
                    let (f, id) = (self.clone(), c.id.clone());
                    self.h
                        .tasks
                        .spawn("camera take-over", async move { f.acquire(&id).await });
                }
            }
        }
        *owners = Some(now);
        Ok(())
    }

    /// Acts on a move made through this box at once (the other boxes see it within a tick).
    pub fn moved(self: &Arc<Self>, camera: &str, to: &str) {
        let (f, id) = (self.clone(), camera.to_string());
        if to == self.me {
            self.h
                .tasks
                .spawn("camera take-over", async move { f.acquire(&id).await });
        } else {
            let to = to.to_string();
            self.h
                .tasks
                .spawn("camera hand-over", async move { f.release(&id, &to).await });
        }
    }

    /// Stops what this node runs for a camera that now belongs to `owner`.
    async fn release(&self, camera: &str, owner: &str) {
        let Some(_busy) = self.busy.mark(format!("release/{camera}")) else {
            return;
        };
        if self.h.recordings.status(camera).is_some() {
            info!(
                camera,
                to = owner,
                "camera moved away: stopping its recording here"
            );
            self.h
                .recordings
                .hand_over(camera, &moved_note(owner))
                .await;
        }
        if self.h.streams.get(camera).is_some() {
            info!(
                camera,
                to = owner,
                "camera moved away: closing its session here"
            );
            self.h.streams.kill(camera);
        }
    }

    /// Starts recording a camera that came to this node with a continuous recording running,
    /// once the old owner's row is closed (or, the old owner being down, after closing it here).
    async fn acquire(&self, camera: &str) {
        let Some(_busy) = self.busy.mark(format!("acquire/{camera}")) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.try_acquire(camera).await {
                Ok(true) => break,
                Ok(false) => tokio::time::sleep(Duration::from_millis(250)).await,
                Err(e) => {
                    warn!(camera, error = %e.chain(), "cannot take the camera's recording over yet");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// One attempt; `Ok(true)` when done (recording, or nothing to do).
    async fn try_acquire(&self, camera: &str) -> Result<bool> {
        let Some(cam) = self.h.store.camera(camera).await? else {
            return Ok(true);
        };
        if cam.node != self.me || !cam.is_recording || self.h.recordings.status(camera).is_some() {
            return Ok(true);
        }
        let open: Vec<_> = self
            .h
            .store
            .open_recordings()
            .await?
            .into_iter()
            .filter(|r| r.camera_id == camera)
            .collect();
        for r in &open {
            if r.node == self.me {
                // ours from before a crash: crash recovery reconciles it at the next start
                return Ok(true);
            }
            if self.alive(&r.node) {
                return Ok(false); // the old owner is stopping it
            }
            let note = format!(
            "node {} stopped answering; camera taken over by node {} (the file on {} keeps what was written)",
            r.node, self.me, r.node
        );
            self.h
                .store
                .finish_recording(
                    r.id,
                    RecordingEnd {
                        end_time: Utc::now(),
                        duration_sec: r.duration_sec,
                        file_size: r.file_size,
                        status: RecordingStatus::Stopped,
                        note: Some(note),
                    },
                )
                .await?;
            warn!(camera, recording = r.id, node = %r.node, "closed a down node's recording row");
        }
        match self.h.recordings.resume(&self.h.sealer, cam).await {
            Ok(()) => Ok(true),
            Err(crate::media::error::Error::Busy(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives cameras and recordings made before nodes existed to this node (the first box to
    /// start after the upgrade); with the embedded store, every camera is this box's.
    pub async fn claim(&self) -> Result<()> {
        let store = &self.h.store;
        let n = store.claim_unowned(&self.me).await?;
        if !self.shared {
            for c in store.cameras().await? {
                if c.node != self.me {
                    let patch = CameraPatch {
                        node: Some(self.me.clone()),
                        ..Default::default()
                    };
                    store.update_camera(&c.id, patch).await?;
                }
            }
        }
        if n > 0 {
            info!(rows = n, node = %self.me, "claimed cameras and recordings that had no node");
        }
        Ok(())
    }
}

/// Keys in progress; each mark goes with its guard.
#[derive(Default)]
struct Marks(Mutex<HashSet<String>>);

impl Marks {
    /// Marks `key`; `None` when it already is.
    fn mark(&self, key: String) -> Option<Mark<'_>> {
        let fresh = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        // built only when fresh: a guard dropped here would unmark the other's key
        fresh.then(|| Mark { marks: self, key })
    }
}

/// A key in progress (see [`Marks::mark`]).
struct Mark<'a> {
    marks: &'a Marks,
    key: String,
}

impl Drop for Mark<'_> {
    fn drop(&mut self) {
        self.marks
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// The note of a recording stopped because its camera moved to `node`.
pub fn moved_note(node: &str) -> String {
    format!("the camera moved to node {node}")
}

/// This box's instance id: `DATA_DIR/node_id`, made once.
pub fn instance_id(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join("node_id");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 16 => Ok(s.trim().to_string()),
        _ => {
            let id = hex::encode(rand::random::<[u8; 16]>());
            std::fs::write(&path, &id).map_err(|source| Error::Io {
                context: format!("cannot write {}", path.display()),
                source,
            })?;
            Ok(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hand_over_at_a_time_per_key() {
        let f = Marks::default();
        let first = f.mark("acquire/cam".into()).expect("free");
        assert!(f.mark("acquire/cam".into()).is_none(), "taken");
        assert!(
            f.mark("acquire/cam".into()).is_none(),
            "a refusal leaves the mark"
        );
        let other = f.mark("release/cam".into());
        assert!(other.is_some());
        drop(first);
        assert!(f.mark("acquire/cam".into()).is_some(), "free again");
    }
}
