//! One error type for the whole service.
//!
//! Every failure that can reach a client is an [`Error`] with a [`Kind`]; the kind alone decides
//! the HTTP status (the store's own errors are mapped to it here, their causes written into the
//! message) and the `code` of the JSON body `{"error": "<sentence>", "code": "<snake_case>"}`.
//! The message is a human sentence with context (which camera, which user id, which file), and
//! never a password, token or RTSP credential.

use std::fmt;
use std::sync::Arc;

/// What went wrong, as far as a client is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The client refuses every encoding the file is stored in (406).
    NotAcceptable,
    Conflict,
    /// The client took too long to send its request (408).
    RequestTimeout,
    /// Addressed by a name this box does not answer to (421; DNS rebinding defence).
    MisdirectedRequest,
    PayloadTooLarge,
    RangeNotSatisfiable,
    TooManyRequests,
    Internal,
    Unavailable,
    InsufficientStorage,
}

impl Kind {
    pub fn status(self) -> u16 {
        match self {
            Kind::BadRequest => 400,
            Kind::Unauthorized => 401,
            Kind::Forbidden => 403,
            Kind::NotFound => 404,
            Kind::MethodNotAllowed => 405,
            Kind::NotAcceptable => 406,
            Kind::Conflict => 409,
            Kind::RequestTimeout => 408,
            Kind::MisdirectedRequest => 421,
            Kind::PayloadTooLarge => 413,
            Kind::RangeNotSatisfiable => 416,
            Kind::TooManyRequests => 429,
            Kind::Internal => 500,
            Kind::Unavailable => 503,
            Kind::InsufficientStorage => 507,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Kind::BadRequest => "bad_request",
            Kind::Unauthorized => "unauthorized",
            Kind::Forbidden => "forbidden",
            Kind::NotFound => "not_found",
            Kind::MethodNotAllowed => "method_not_allowed",
            Kind::NotAcceptable => "not_acceptable",
            Kind::Conflict => "conflict",
            Kind::RequestTimeout => "request_timeout",
            Kind::MisdirectedRequest => "misdirected_request",
            Kind::PayloadTooLarge => "payload_too_large",
            Kind::RangeNotSatisfiable => "range_not_satisfiable",
            Kind::TooManyRequests => "too_many_requests",
            Kind::Internal => "internal_error",
            Kind::Unavailable => "service_unavailable",
            Kind::InsufficientStorage => "insufficient_storage",
        }
    }
}

/// An error with its kind, a sentence for the client and, for 429, when to come back; a
/// failure below it (a file, a TLS library, a thread) is kept as its `source()`.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// Seconds for a `Retry-After` header (429/503).
    pub retry_after: Option<u64>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Two errors are the same answer: kind, sentence and `Retry-After` (not the cause's identity).
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        (self.kind, &self.message, self.retry_after)
            == (other.kind, &other.message, other.retry_after)
    }
}
impl Eq for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }
    /// An internal failure of `context` ("cannot read TLS_CERT /x") caused by `source`: the
    /// sentence names both, and the cause is kept.
    pub fn failed(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let mut e = Self::internal(format!("{context}: {source}"));
        e.source = Some(Arc::new(source));
        e
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(Kind::Unauthorized, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(Kind::Internal, m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(Kind::Unavailable, m)
    }
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The JSON body every error response carries.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.message, "code": self.kind.code() })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.code())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why the service could not start or stopped with an error: a setting the operator must
/// change, or anything else. `main` alone turns these into exit codes (78, `EX_CONFIG`, for
/// the first; 1 otherwise).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings cannot work here: a `SECRET_KEY` the other boxes on the database do not
    /// share, a `NODE_NAME` another running box has.
    #[error("{0}")]
    Config(String),
    #[error("{}", .0.message)]
    Failed(#[from] Error),
}

/// The store's kinds as a client sees them; the message carries every cause.
impl From<crate::store::Error> for Error {
    fn from(e: crate::store::Error) -> Error {
        use crate::store::Kind as S;
        let kind = match e.kind {
            S::NotFound => Kind::NotFound,
            S::Conflict | S::Setting => Kind::Conflict,
            S::Forbidden => Kind::Forbidden,
            S::Unavailable => Kind::Unavailable,
            S::Failed => Kind::Internal,
        };
        Error::new(kind, e.chain())
    }
}

/// A store whose data was made with other settings is the operator's to fix.
impl From<crate::store::Error> for StartError {
    fn from(e: crate::store::Error) -> StartError {
        match e.kind {
            crate::store::Kind::Setting => StartError::Config(e.chain()),
            _ => StartError::Failed(e.into()),
        }
    }
}

impl From<StartError> for Error {
    fn from(e: StartError) -> Error {
        match e {
            StartError::Config(m) => Error::conflict(m),
            StartError::Failed(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_cause_and_names_it() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = Error::failed("cannot listen on 127.0.0.1:5000", io);
        assert_eq!(e.kind, Kind::Internal);
        assert_eq!(
            e.message,
            "cannot listen on 127.0.0.1:5000: Address already in use"
        );
        let cause = std::error::Error::source(&e).map(|c| c.to_string());
        assert_eq!(cause.as_deref(), Some("Address already in use"));
        // the same answer to a client, with or without the cause kept
        assert_eq!(
            e,
            Error::internal("cannot listen on 127.0.0.1:5000: Address already in use")
        );
    }
}
