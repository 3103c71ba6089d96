//! What a store operation fails with: the store's own error, whose kind says what the caller
//! can do about it and which keeps the database's error as its source. Only the API edge
//! (`crate::error`) turns a kind into an HTTP status, and `main` into an exit code.

use std::fmt::Write as _;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cause of a failure, as the database library reported it.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, as far as a caller of the store is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The row an operation names does not exist.
    NotFound,
    /// The change breaks a rule of the data: a name or address taken, the last admin.
    Conflict,
    /// The change is never allowed (registering a first user on a store that has one).
    Forbidden,
    /// The data was made with another setting: a `SECRET_KEY` or `DATA_DIR` that does not fit.
    Setting,
    /// The database cannot be used now: open in another process, unreachable.
    Unavailable,
    /// The database failed, or holds what this vigia cannot read.
    Failed,
}

/// A store failure: its kind, a sentence with context (which user, which file), and the
/// database library's error where there is one. Never a password or an RTSP credential.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    #[source]
    source: Option<Source>,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, m)
    }
    pub fn setting(m: impl Into<String>) -> Self {
        Self::new(Kind::Setting, m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(Kind::Unavailable, m)
    }
    /// A failure with no cause below it (a row this vigia cannot read).
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(Kind::Failed, m)
    }
    /// The database library failed: `context` says what was being done.
    pub fn failed(context: impl Into<String>, source: impl Into<Source>) -> Self {
        Self::new(Kind::Failed, context).caused_by(source)
    }
    /// The same failure, with `source` as its cause.
    pub fn caused_by(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The message followed by each cause: "cannot open the database x: Permission denied".
    pub fn chain(&self) -> String {
        let mut s = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            let _ = write!(s, ": {e}");
            next = e.source();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_kept_and_written_after_the_context() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let e = Error::failed("cannot open the database /d/vigia.redb", io);
        assert_eq!(e.kind, Kind::Failed);
        assert_eq!(e.to_string(), "cannot open the database /d/vigia.redb");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(source.to_string(), "Permission denied");
        assert_eq!(
            e.chain(),
            "cannot open the database /d/vigia.redb: Permission denied"
        );
        assert_eq!(
            Error::not_found("user 7 not found").chain(),
            "user 7 not found"
        );
    }
}
