//! What can go wrong in media, in media's words, with the cause kept. The API turns each
//! into a status and a JSON body at its edge (`api::media_error`); media knows no HTTP.

use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A question about the live window that cannot be answered as asked (an HLS query).
    #[error("{0}")]
    Invalid(String),
    /// No such thing: a file that left the live window, a camera not streaming or recording.
    #[error("{0}")]
    NotFound(String),
    /// Not yet: the camera has not produced what is asked for; ask again.
    #[error("{0}")]
    NotReady(String),
    /// Already so: the camera is recording.
    #[error("{0}")]
    Busy(String),
    /// A limit is reached (sessions, recordings per user).
    #[error("{0}")]
    Limit(String),
    /// The disk cannot take a recording: too little free space.
    #[error("{0}")]
    DiskFull(String),
    /// The recordings directory cannot be made or written.
    #[error("{context}: {source}")]
    NoStorage {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A task writing a recording ended without an answer (it panicked or was cancelled).
    #[error("{context}: {source}")]
    Task {
        context: String,
        #[source]
        source: tokio::task::JoinError,
    },
    /// A camera whose stored settings cannot be used (its sealed URL does not open).
    #[error(transparent)]
    Camera(#[from] crate::error::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A file operation on `context` failed with `source`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The sentence with its causes, for a log line or a client (file and task failures
    /// already name their cause; the store's error lists its own).
    pub fn chain(&self) -> String {
        match self {
            Error::Store(e) => e.chain(),
            Error::Camera(e) => e.message.clone(),
            e => e.to_string(),
        }
    }
}
