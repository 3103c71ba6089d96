//! Files the binary serves as they are: the OpenAPI document and, with the `web` feature, the
//! web page (`web/`). build.rs gzips them once; a request gets the stored bytes with
//! `Content-Encoding: gzip`, its `ETag` (304 on `If-None-Match`) and a `Cache-Control` by kind.
//! Every browser accepts gzip; a client that refuses it by name gets the document plain (it is
//! also embedded as it is) and 406 for a page file (the binary carries no inflater); one that
//! sends no `Accept-Encoding` accepts anything (RFC 9110 §12.5.3).
//! Page files carry the page's security headers: a Content-Security-Policy without inline
//! scripts, no framing, no referrer (player tokens live in URLs).

use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};
use hyper::{Response, StatusCode};

use super::response::{self, Body};
use crate::error::{Error, Kind, Result};

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub cache_control: &'static str,
    /// Quoted, from the file's content.
    pub etag: &'static str,
    pub gzip: &'static [u8],
    /// The content as it is, for clients that refuse gzip (the OpenAPI document only; the
    /// page's files are for browsers, which all take gzip).
    pub plain: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Whether this build carries the web page (cargo feature `web`).
pub fn has_page() -> bool {
    !WEB.is_empty()
}

/// The page's file `name` (`index.html`, `app.js`, …), if this build has the page.
pub fn web(name: &str) -> Option<&'static Asset> {
    WEB.iter().find(|a| a.name == name)
}

/// What the page may load: its own scripts, styles and API; media from the API and the
/// players' MediaSource (`blob:`); nothing inline, nothing framing it.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The answer for `asset`: 304 when the client has it, 406 when it refuses gzip.
pub fn respond(asset: &Asset, headers: &HeaderMap, page: bool) -> Result<Response<Body>> {
    // what this client gets: the gzip bytes, or the plain ones (`false`: not encoded)
    let (body, encoded) = match (accepts_gzip(headers), asset.plain) {
        (true, _) => (asset.gzip, true),
        (false, Some(plain)) => (plain, false),
        (false, None) => {
            return Err(Error::new(
                Kind::NotAcceptable,
                format!(
                    "{} is stored gzip-compressed: send Accept-Encoding: gzip",
                    asset.name
                ),
            ))
        }
    };
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == asset.etag || t == "*");
    let mut r = if fresh {
        let mut r = Response::new(response::full(""));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(response::full(body));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        if encoded {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    let h = r.headers_mut();
    h.insert(ETAG, HeaderValue::from_static(asset.etag));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(asset.cache_control));
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if page {
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(PAGE_CSP),
        );
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
    }
    Ok(r)
}

/// Whether gzip is acceptable: no `Accept-Encoding` at all, or one naming `gzip`, `x-gzip` or
/// `*` without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut values = headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    if values.peek().is_none() {
        return true;
    }
    values.flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        ["gzip", "x-gzip", "*"]
            .iter()
            .any(|c| coding.eq_ignore_ascii_case(c))
            && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn gzip_is_acceptable_unless_refused_by_name() {
        assert!(accepts_gzip(&HeaderMap::new()));
        assert!(accepts_gzip(&with("accept-encoding", "gzip, deflate, br")));
        assert!(accepts_gzip(&with(
            "accept-encoding",
            "br;q=1.0, GZIP;q=0.5"
        )));
        assert!(accepts_gzip(&with("accept-encoding", "*")));
        assert!(!accepts_gzip(&with("accept-encoding", "identity")));
        assert!(!accepts_gzip(&with("accept-encoding", "gzip;q=0")));
        assert!(!accepts_gzip(&with("accept-encoding", "")));
    }

    #[test]
    fn a_matching_etag_is_304_and_a_refused_gzip_406() {
        let a = &OPENAPI_JSON;
        let r = respond(a, &with("if-none-match", "\"x\", W/\"y\""), false).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_static(a.etag));
        let r = respond(a, &h, false).unwrap();
        assert_eq!(r.status(), 304);
        assert_eq!(r.headers()[ETAG], a.etag);
        // the document goes plain to a client that refuses gzip; a page file is refused
        let r = respond(a, &with("accept-encoding", "identity"), false).unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get(CONTENT_ENCODING).is_none());
        let page_file = Asset {
            plain: None,
            ..OPENAPI_JSON
        };
        let e = respond(&page_file, &with("accept-encoding", "identity"), true).unwrap_err();
        assert_eq!(e.kind.status(), 406);
    }
}
