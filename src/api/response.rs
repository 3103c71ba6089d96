//! Response helpers: the body type, JSON answers, and errors as `{"error", "code"}`.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::error::{Error, Kind};
use crate::fleet::{Error as FleetError, Redirect};
use crate::media::error::Error as MediaError;

/// Media's errors as a client sees them: the kind decides the status, the sentence (with its
/// causes) is the message.
impl From<MediaError> for Error {
    fn from(e: MediaError) -> Error {
        let kind = match e {
            MediaError::Camera(e) => return e,
            MediaError::Store(e) => return e.into(),
            MediaError::Invalid(_) => Kind::BadRequest,
            MediaError::NotFound(_) => Kind::NotFound,
            // a player (hls.js, Safari) retries a 503 that says when
            MediaError::NotReady(_) => return Error::unavailable(e.chain()).with_retry_after(1),
            MediaError::Busy(_) => Kind::Conflict,
            MediaError::Limit(_) => Kind::TooManyRequests,
            MediaError::DiskFull(_) | MediaError::NoStorage { .. } => Kind::InsufficientStorage,
            MediaError::Io { .. } | MediaError::Task { .. } => Kind::Internal,
        };
        Error::new(kind, e.chain())
    }
}

/// The fleet's errors as a client sees them.
impl From<FleetError> for Error {
    fn from(e: FleetError) -> Error {
        let kind = match e {
            FleetError::Media(e) => return e.into(),
            FleetError::Store(e) => return e.into(),
            FleetError::OwnerUnreachable {
                message,
                retry_after,
            } => {
                let e = Error::unavailable(message);
                return match retry_after {
                    Some(s) => e.with_retry_after(s),
                    None => e,
                };
            }
            FleetError::UnknownNode(_) => Kind::BadRequest,
            FleetError::TargetDown(_) | FleetError::NameTaken(_) => Kind::Conflict,
            FleetError::Io { .. } => Kind::Internal,
        };
        Error::new(kind, e.chain())
    }
}

/// Every response body: whole buffers now, streamed files later.
pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON response with `status`.
pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(full(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn ok<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json(200, value)
}

pub fn message(status: u16, text: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "message": text }))
}

/// The response for an error, with `Retry-After` when it has one.
pub fn error(e: &Error) -> Response<Body> {
    let mut r = json(e.kind.status(), &e.body());
    if let Some(secs) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    r
}

/// One failed entry of a batch answer: the error's body, with the camera and `"status":
/// "error"`.
pub fn batch_error(ip: &str, e: &Error) -> serde_json::Value {
    batch_entry(ip, e.body())
}

/// What a redirect says: the same shape as an error (clients of the old backend read
/// `error`), with `location` in it too.
fn redirect_body(r: &Redirect) -> serde_json::Value {
    serde_json::json!({ "error": r.message, "code": "redirect", "location": r.location })
}

/// `307` to the node that serves the request.
pub fn redirect(r: &Redirect) -> Response<Body> {
    let mut resp = json(307, &redirect_body(r));
    if let Ok(v) = HeaderValue::from_str(&r.location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

/// One entry of a batch answer that another node serves: where to send it.
pub fn batch_redirect(ip: &str, r: &Redirect) -> serde_json::Value {
    batch_entry(ip, redirect_body(r))
}

fn batch_entry(ip: &str, mut body: serde_json::Value) -> serde_json::Value {
    body["ip"] = ip.into();
    body["status"] = "error".into();
    body
}

/// 405 with the methods the path does take.
pub fn method_not_allowed(path: &str, allowed: &[&str]) -> Response<Body> {
    let e = Error::new(
        crate::error::Kind::MethodNotAllowed,
        format!("{path} accepts {}", allowed.join(", ")),
    );
    let mut r = error(&e);
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        r.headers_mut().insert(ALLOW, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Media says what happened; the edge alone picks the status, and the cause stays in the
    /// sentence (and in `source()` for a log).
    #[test]
    fn media_errors_become_statuses_at_the_edge_with_their_cause() {
        let io = || std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let cases: Vec<(MediaError, u16, &str)> = vec![
            (
                MediaError::Invalid("_HLS_part needs _HLS_msn".into()),
                400,
                "_HLS_part needs _HLS_msn",
            ),
            (
                MediaError::NotFound("camera c is not recording".into()),
                404,
                "camera c is not recording",
            ),
            (MediaError::NotReady("not yet".into()), 503, "not yet"),
            (
                MediaError::Busy("camera c is already recording".into()),
                409,
                "camera c is already recording",
            ),
            (
                MediaError::Limit("the limit (MAX_STREAMS) is 2".into()),
                429,
                "the limit (MAX_STREAMS) is 2",
            ),
            (
                MediaError::DiskFull("only 1 MiB free".into()),
                507,
                "only 1 MiB free",
            ),
            (
                MediaError::NoStorage {
                    context: "cannot write /r/a.mp4".into(),
                    source: io(),
                },
                507,
                "cannot write /r/a.mp4: No space left on device",
            ),
            (
                MediaError::io("fdatasync /r/a.mp4", io()),
                500,
                "fdatasync /r/a.mp4: No space left on device",
            ),
            (
                MediaError::Store(crate::store::Error::failed("cannot read recording 7", io())),
                500,
                "cannot read recording 7: No space left on device",
            ),
            (
                MediaError::Camera(Error::bad_request("unusable URL")),
                400,
                "unusable URL",
            ),
        ];
        for (e, status, message) in cases {
            if let MediaError::Io { .. } | MediaError::NoStorage { .. } = &e {
                let cause = std::error::Error::source(&e).map(|c| c.to_string());
                assert_eq!(cause.as_deref(), Some("No space left on device"));
            }
            let api = Error::from(e);
            assert_eq!((api.kind.status(), api.message.as_str()), (status, message));
            assert_eq!(api.retry_after.is_some(), message == "not yet", "{message}");
        }
    }

    #[test]
    fn fleet_errors_become_statuses_at_the_edge() {
        let down = Error::from(FleetError::OwnerUnreachable {
            message: "camera c belongs to node b".into(),
            retry_after: Some(5),
        });
        assert_eq!((down.kind.status(), down.retry_after), (503, Some(5)));
        assert_eq!(
            Error::from(FleetError::UnknownNode("unknown node 'x'".into()))
                .kind
                .status(),
            400
        );
        assert_eq!(
            Error::from(FleetError::TargetDown("node 'b' is down".into()))
                .kind
                .status(),
            409
        );
        let busy = FleetError::Media(MediaError::Busy("camera c is already recording".into()));
        assert_eq!(Error::from(busy).kind.status(), 409);
        let taken =
            crate::error::StartError::from(FleetError::NameTaken("NODE_NAME a is taken".into()));
        assert!(
            matches!(taken, crate::error::StartError::Config(m) if m == "NODE_NAME a is taken")
        );
    }
}
