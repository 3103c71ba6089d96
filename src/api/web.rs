//! The web page (`web/`, feature `web`): `GET /` is its `index.html`, `GET /ui/<file>` the rest
//! (scripts, styles, strings, the vendored hls.js). Public: the page holds no data, it logs in
//! through the API like any client. A build without the page answers 404 saying so.

use hyper::Response;

use super::assets;
use super::response::Body;
use super::Ctx;
use crate::error::{Error, Result};

/// `GET /`: the page.
pub async fn page(c: Ctx) -> Result<Response<Body>> {
    serve(&c, "index.html")
}

/// `GET /ui/<file>`: one of the page's files.
pub async fn file(c: Ctx) -> Result<Response<Body>> {
    serve(&c, c.param(0))
}

fn serve(c: &Ctx, name: &str) -> Result<Response<Body>> {
    match assets::web(name) {
        Some(a) => assets::respond(a, &c.headers, true),
        None if !assets::has_page() => Err(Error::not_found(
            "this vigia was built without its web page (cargo feature `web`); the API is at /api",
        )),
        None => Err(Error::not_found(format!(
            "no page file {}",
            crate::camera::truncate(name, 64)
        ))),
    }
}
