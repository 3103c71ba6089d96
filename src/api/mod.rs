//! The HTTP surface: **the** route table and the middleware chain every request goes through.
//!
//! Order per request: request id → body, at most 64 KiB (413) → CORS preflight → route match
//! (404 / 405) → authentication (401) → handler (panics become 500) → CORS and request-id headers → one
//! log line with method, path (never the query: it may carry tokens), status, latency and id.
//! Handlers live one file per resource and never read roles themselves: they call
//! [`crate::auth::authorize`].

pub mod assets;
pub mod auth;
pub mod cameras;
pub mod discovery;
pub mod host;
pub mod metrics;
pub mod nvr;
pub mod response;
pub mod server;
pub mod streams;
pub mod system;
pub mod users;
pub mod web;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use tracing::{error, Instrument};

use crate::auth::jwt::{Claims, PlayerScope, Tokens};
use crate::auth::limiter::LoginLimiter;
use crate::auth::password::Passwords;
use crate::auth::Action;
use crate::camera::seal::Sealer;
use crate::clock::Clock;
use crate::config::{Config, MAX_BODY_BYTES};
use crate::error::{Error, Kind, Result};
use crate::media::recordings::Recordings;
use crate::media::streams::Streams;
use crate::store::{Camera, DynStore, Session, User};
pub use response::Body;

/// Everything a request handler may reach, shared by all connections; built once by
/// [`crate::app`], which wires the background work to the same handles.
pub struct App {
    pub config: Config,
    pub store: DynStore,
    pub tokens: Tokens,
    pub passwords: Passwords,
    pub limiter: LoginLimiter,
    /// Logins recently checked, so media requests do not verify and read the store each time.
    pub grants: crate::auth::grants::Grants,
    /// Open HTTP connections, per address, and those refused or timed out.
    pub connections: Arc<server::Connections>,
    /// Host names requests may carry besides addresses and `localhost` (DNS rebinding).
    pub host_names: Vec<String>,
    /// Lines a neighbour can cause (refusals, failed logins), one a minute per address.
    pub lograte: crate::system::lograte::LogRate,
    pub sealer: Sealer,
    pub clock: Arc<dyn Clock>,
    pub started: Instant,
    pub streams: Arc<Streams>,
    pub recordings: Arc<Recordings>,
    pub fleet: Arc<crate::fleet::Fleet>,
    pub discovery: Arc<crate::discovery::Discovery>,
    /// Adds, changes and deletes cameras (with what that implies for sessions and recordings).
    pub cameras: Arc<crate::services::cameras::Cameras>,
    /// Users, their roles, passwords, sessions and assigned cameras.
    pub users: crate::services::users::Users,
    /// Background tasks, stopped and joined at shutdown before recordings close.
    pub tasks: Arc<crate::system::tasks::Tasks>,
}

impl App {
    /// Whether the store answers (for `/health`).
    pub async fn store_answers(&self) -> std::result::Result<(), crate::store::Error> {
        self.store.ping().await
    }
}

/// Who may call a route before the handler's own `authorize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token looked at.
    Public,
    /// A token is verified when present (registration: the first user needs none).
    Optional,
    /// A valid, unrevoked token of an existing user is required.
    Token,
    /// A login token in `Authorization`, or in the `t` query parameter a player token for
    /// the camera or recording (the scope) named by the path's first parameter (players that
    /// cannot send headers).
    Player(PlayerScope),
    /// `METRICS_TOKEN` as the bearer token (a scraper), or a login token as for
    /// [`Access::Token`].
    Scraper,
}

/// What a handler gets: the app, path parameters, query, headers, body and caller.
pub struct Ctx {
    pub app: Arc<App>,
    /// Path and query as the client sent them (for a redirect to another node).
    pub target: String,
    pub params: Vec<String>,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub user: Option<User>,
    pub claims: Option<Claims>,
    pub peer: SocketAddr,
    /// The request carried `METRICS_TOKEN` (routes with [`Access::Scraper`] only).
    pub scraper: bool,
}

/// Something this node serves, or where the request goes instead (a `307`: an answer, not an
/// error).
pub enum Placed<T> {
    Here(T),
    Elsewhere(crate::fleet::Redirect),
}

impl<T> Placed<T> {
    /// `thing`, unless [`Ctx::on_node`] gave a redirect for it.
    pub fn new(thing: T, redirect: Option<crate::fleet::Redirect>) -> Placed<T> {
        match redirect {
            None => Placed::Here(thing),
            Some(r) => Placed::Elsewhere(r),
        }
    }
}

impl Ctx {
    /// The caller, if it may do `action` (on `camera`, for an action on one camera): the one
    /// permission check, [`crate::auth::authorize`], for every handler.
    pub async fn authorize(&self, action: Action, camera: Option<&str>) -> Result<&User> {
        let user = self.user()?;
        crate::auth::authorize(self.app.store.as_ref(), user, action, camera).await?;
        Ok(user)
    }

    /// Ids of the cameras the caller may act on with `action`, `None` meaning all of them.
    pub async fn visible_camera_ids(&self, action: Action) -> Result<Option<Vec<String>>> {
        crate::auth::visible_cameras(self.app.store.as_ref(), self.user()?, action).await
    }

    /// The cameras the caller may act on with `action`.
    pub async fn visible_cameras(&self, action: Action) -> Result<Vec<Camera>> {
        let ids = self.visible_camera_ids(action).await?;
        self.app.cameras.list(ids).await
    }

    /// Camera `id`, if the caller may act on it with `action` (403 before 404 for
    /// non-admins, through the one permission check).
    pub async fn camera(&self, id: &str, action: Action) -> Result<Camera> {
        self.authorize(action, Some(id)).await?;
        self.app.store.camera(id).await?.ok_or_else(|| {
            Error::not_found(format!(
                "camera {} not found",
                crate::camera::truncate(id, 64)
            ))
        })
    }

    /// [`Ctx::camera`], if this node serves it; else the redirect to its node (503 when
    /// that node is down).
    pub async fn camera_here(&self, id: &str, action: Action) -> Result<Placed<Camera>> {
        let cam = self.camera(id, action).await?;
        let redirect = self.on_node(&cam.node, &format!("camera {id}")).await?;
        Ok(Placed::new(cam, redirect))
    }

    /// `None` when this box serves things of node `owner`; else the redirect to that node
    /// (503 when it is down).
    pub async fn on_node(&self, owner: &str, what: &str) -> Result<Option<crate::fleet::Redirect>> {
        Ok(self.app.fleet.serve_here(owner, what, &self.target).await?)
    }

    /// The authenticated caller (routes with [`Access::Token`] always have one).
    pub fn user(&self) -> Result<&User> {
        self.user
            .as_ref()
            .ok_or_else(|| Error::unauthorized("authentication required"))
    }

    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or("")
    }

    /// The body as JSON of type `T`: 400 naming what is wrong.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if self.body.is_empty() {
            return Err(Error::bad_request("a JSON body is required"));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_value(self.query.as_deref(), name)
    }
}

/// Parameter `name` of a query string, percent-decoded (`+` is a space); the first if repeated.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name).then(|| percent_decode(&v.replace('+', " ")))?
    })
}

type Handler = fn(Ctx) -> BoxFuture<'static, Result<Response<Body>>>;

/// One row of the route table. `{}` in a path matches one segment.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
    /// Its requests' latency and answers, for `/metrics` (atomics: no lock per request).
    pub stats: RouteStats,
}

/// Latency and answers by status class (1xx … 5xx) of one route.
pub struct RouteStats {
    pub latency: crate::metrics::Histogram,
    pub answers: [std::sync::atomic::AtomicU64; 5],
}

impl RouteStats {
    pub const fn new() -> RouteStats {
        RouteStats {
            latency: crate::metrics::Histogram::new(crate::metrics::SLOW),
            answers: [const { std::sync::atomic::AtomicU64::new(0) }; 5],
        }
    }

    fn record(&self, status: u16, started: Instant) {
        self.latency.observe_since(started);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        crate::metrics::inc(&self.answers[class]);
    }
}

impl Default for RouteStats {
    fn default() -> RouteStats {
        RouteStats::new()
    }
}

/// Requests no route took: unknown paths, wrong methods, `OPTIONS`, refused bodies or hosts.
pub static UNROUTED: RouteStats = RouteStats::new();

macro_rules! route {
    ($m:ident $path:literal Player($scope:ident) $h:path) => {
        Route {
            method: Method::$m,
            path: $path,
            access: Access::Player(PlayerScope::$scope),
            handler: |c| Box::pin($h(c)),
            stats: RouteStats::new(),
        }
    };
    ($m:ident $path:literal $access:ident $h:path) => {
        Route {
            method: Method::$m,
            path: $path,
            access: Access::$access,
            handler: |c| Box::pin($h(c)),
            stats: RouteStats::new(),
        }
    };
}

/// The route table: every path the service answers. Literal paths come before the
/// parameterised ones they would also match.
pub static ROUTES: [Route; 36] = [
    route!(GET "/" Public web::page),
    route!(GET "/ui/{}" Public web::file),
    route!(GET "/health" Public system::health),
    route!(GET "/stats" Optional system::stats),
    route!(GET "/api/nodes" Token system::nodes),
    route!(GET "/api/openapi.json" Public system::openapi),
    route!(GET "/metrics" Scraper metrics::metrics),
    route!(POST "/api/auth/login" Public auth::login),
    route!(POST "/api/auth/logout" Token auth::logout),
    route!(POST "/api/auth/register" Optional auth::register),
    route!(POST "/api/auth/password" Token auth::change_password),
    route!(GET "/api/users" Token users::list),
    route!(GET "/api/users/{}" Token users::get),
    route!(PUT "/api/users/{}" Token users::update),
    route!(DELETE "/api/users/{}" Token users::delete),
    route!(POST "/api/users/{}/logout-all" Token users::logout_all),
    route!(POST "/api/users/{}/cameras" Token users::assign),
    route!(DELETE "/api/users/{}/cameras/{}" Token users::unassign),
    route!(GET "/api/cameras/list" Token cameras::list),
    route!(GET "/api/cameras/discover" Token discovery::get),
    route!(POST "/api/cameras/discover" Token discovery::post),
    route!(POST "/api/cameras" Token cameras::create),
    route!(GET "/api/cameras/{}" Token cameras::get),
    route!(PUT "/api/cameras/{}" Token cameras::update),
    route!(DELETE "/api/cameras/{}" Token cameras::delete),
    route!(GET "/api/cameras/stream/{}" Token streams::start),
    route!(DELETE "/api/cameras/stream/{}" Token streams::stop),
    route!(POST "/api/cameras/streams/batch" Token streams::batch),
    route!(GET "/api/cameras/streams/{}/{}" Player(Camera) streams::file),
    route!(POST "/api/nvr/record/{}" Token nvr::start),
    route!(DELETE "/api/nvr/record/{}" Token nvr::stop),
    route!(POST "/api/nvr/records/batch" Token nvr::batch),
    route!(GET "/api/nvr/status/{}" Token nvr::status),
    route!(GET "/api/nvr/recordings" Token nvr::list),
    route!(GET "/api/nvr/recordings/{}/download" Player(Recording) nvr::download),
    route!(DELETE "/api/nvr/recordings/{}" Token nvr::delete),
];

use crate::camera::url::percent_decode;

/// Whether `segments` have the pattern's shape: as many, and its literal ones (no allocation:
/// most patterns fail here).
fn shape_matches(pattern: &str, segments: &[&str]) -> bool {
    let pat = || pattern.trim_start_matches('/').split('/');
    pat().count() == segments.len() && pat().zip(segments).all(|(p, s)| p == "{}" || p == *s)
}

/// Matches `path` against a pattern, returning the decoded parameters.
fn match_path(pattern: &str, segments: &[&str]) -> Option<Vec<String>> {
    if !shape_matches(pattern, segments) {
        return None;
    }
    let pat = || pattern.trim_start_matches('/').split('/');
    pat()
        .zip(segments)
        .filter(|(p, _)| *p == "{}")
        .map(|(_, s)| percent_decode(s).filter(|v| !v.is_empty()))
        .collect()
}

enum Found {
    Route(&'static Route, Vec<String>),
    WrongMethod(Vec<&'static str>),
    Nothing,
}

fn find(method: &Method, path: &str) -> Found {
    let trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let segments: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
    let lookup = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    // one pass: a path that a pattern with more literal segments takes (`/api/cameras/list`)
    // is that resource alone; the patterns it would also match (`/api/cameras/{}`) do not
    // answer it, nor count in its `Allow`
    let mut best = 0;
    let mut hit: Option<(&'static Route, Vec<String>)> = None;
    let mut allowed: Vec<&'static str> = Vec::new();
    let matching = ROUTES
        .iter()
        .filter_map(|r| match_path(r.path, &segments).map(|p| (r, p)));
    for (r, params) in matching {
        let literals = r.path.split('/').filter(|p| *p != "{}").count();
        if literals < best {
            continue;
        }
        if literals > best {
            (best, hit) = (literals, None);
            allowed.clear();
        }
        if r.method == lookup {
            hit = hit.or(Some((r, params)));
        } else if !allowed.contains(&r.method.as_str()) {
            allowed.push(r.method.as_str());
        }
    }
    if let Some((r, params)) = hit {
        return Found::Route(r, params);
    }
    if allowed.is_empty() {
        Found::Nothing
    } else {
        if allowed.contains(&"GET") {
            allowed.push("HEAD");
        }
        allowed.push("OPTIONS");
        Found::WrongMethod(allowed)
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()))
}

/// Verifies the bearer token and loads its user: one store read.
async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Option<(User, Claims)>> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let token = bearer(value)
        .filter(|t| !t.is_empty() && t.len() <= 4096)
        .ok_or_else(|| Error::unauthorized("Authorization must be 'Bearer <token>'"))?;
    let now = app.clock.now().timestamp();
    if let Some(crate::auth::grants::Grant {
        user,
        claims: Some(claims),
        ..
    }) = app.grants.get(token, now)
    {
        return Ok(Some((user, claims)));
    }
    let epoch = app.grants.epoch();
    let claims = app.tokens.verify(token)?;
    let uid = claims
        .user_id()
        .ok_or_else(|| Error::unauthorized("invalid token"))?;
    match app.store.session(uid, &claims.jti, claims.gen).await? {
        Session::Active(user) => {
            let (u, c) = (user.clone(), claims.clone());
            app.grants
                .put(token.to_string(), epoch, u, Some(c), claims.exp);
            Ok(Some((user, claims)))
        }
        Session::Revoked => Err(Error::unauthorized("token has been revoked")),
        Session::NoUser => Err(Error::unauthorized("the token's user no longer exists")),
    }
}

/// Whether the bearer token is `METRICS_TOKEN` (compared in constant time).
fn carries_metrics_token(app: &App, headers: &HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let Some(want) = app.config.metrics_token.as_deref() else {
        return false;
    };
    let sent = headers.get(AUTHORIZATION).and_then(bearer);
    sent.is_some_and(|t| bool::from(t.as_bytes().ct_eq(want.as_bytes())))
}

/// The token of an `Authorization: Bearer <token>` header, trimmed.
fn bearer(value: &HeaderValue) -> Option<&str> {
    let v = value.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

/// The user behind player token `token`, if it opens the camera or recording `id`; cached
/// with what it was checked for, like a login.
async fn player(app: &App, scope: PlayerScope, id: &str, token: &str) -> Result<User> {
    let key = format!("{}\n{token}", scope.claim(id));
    if let Some(g) = app.grants.get(&key, app.clock.now().timestamp()) {
        return Ok(g.user);
    }
    let epoch = app.grants.epoch();
    let pc = app.tokens.verify_player(token, scope, id)?;
    let uid = pc
        .sub
        .parse()
        .map_err(|_| Error::unauthorized("invalid player token"))?;
    match app.store.session(uid, &pc.sid, pc.gen).await? {
        Session::Active(u) => {
            app.grants.put(key, epoch, u.clone(), None, pc.exp);
            Ok(u)
        }
        Session::Revoked => Err(Error::unauthorized(
            "the login behind this player token has ended",
        )),
        Session::NoUser => Err(Error::unauthorized("the token's user no longer exists")),
    }
}

/// Bodies up to this size are read to the end even when over the limit (and dropped), so the
/// client gets its 413 and can reuse the connection; larger ones are cut off.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// How long a client may take to send a whole request body (a slow sender holds a connection).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the body within [`BODY_TIMEOUT`] (else 408, and the connection is closed).
async fn read_body(body: Incoming, headers: &HeaderMap) -> Result<Bytes, (Error, bool)> {
    match tokio::time::timeout(BODY_TIMEOUT, read_body_bounded(body, headers)).await {
        Ok(r) => r,
        Err(_) => Err((
            Error::new(
                Kind::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            ),
            true,
        )),
    }
}

/// Reads the body, keeping at most [`MAX_BODY_BYTES`]. `Err((413, close))` when over the limit.
async fn read_body_bounded(
    mut body: Incoming,
    headers: &HeaderMap,
) -> Result<Bytes, (Error, bool)> {
    let too_large = || {
        Error::new(
            Kind::PayloadTooLarge,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > DRAIN_LIMIT) {
        return Err((too_large(), true));
    }
    let mut kept = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            (
                Error::bad_request(format!("cannot read request body: {e}")),
                true,
            )
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > DRAIN_LIMIT {
                return Err((too_large(), true));
            }
            if seen <= MAX_BODY_BYTES as u64 {
                kept.extend_from_slice(&data);
            }
        }
    }
    if seen > MAX_BODY_BYTES as u64 {
        return Err((too_large(), false));
    }
    Ok(Bytes::from(kept))
}

fn origin_allowed(app: &App, origin: &str) -> bool {
    app.config
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o == origin)
}

const CORS_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS";
const CORS_HEADERS: &str = "Authorization, Content-Type, Range, X-Request-Id";
const CORS_EXPOSE: &str =
    "X-Request-Id, Retry-After, Content-Length, Content-Range, Content-Disposition, Accept-Ranges";

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Answers `OPTIONS`: a CORS preflight, or the methods a path takes.
fn options(app: &App, path: &str, headers: &HeaderMap) -> Response<Body> {
    let allowed = match find(&Method::OPTIONS, path) {
        Found::WrongMethod(m) => m,
        _ => return response::error(&Error::not_found(format!("no route for {path}"))),
    };
    let mut r = Response::new(response::full(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    set(r.headers_mut(), "allow", &allowed.join(", "));
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin {
        if headers.contains_key("access-control-request-method") {
            if !origin_allowed(app, origin) {
                return response::error(&Error::forbidden(format!(
                    "origin {origin} is not in ALLOWED_ORIGINS"
                )));
            }
            let h = r.headers_mut();
            set(h, "access-control-allow-methods", CORS_METHODS);
            set(h, "access-control-allow-headers", CORS_HEADERS);
            set(h, "access-control-max-age", "600");
        }
    }
    r
}

/// Serves one request; never fails (errors are responses).
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let rid = request_id(&parts.headers);
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    let mut routed: Option<&'static Route> = None;

    // The body is read (at most MAX_BODY_BYTES) before anything else, so that a refused
    // request leaves the connection clean for the next one; a body over the limit is not
    // read further and the connection is closed after the 413.
    let body = match (
        read_body(body, &parts.headers).await,
        host::check(&parts, &app.host_names, app.config.any_host),
    ) {
        (Ok(_), Err(e)) => Err((e, false)),
        (b, _) => b,
    };
    let mut resp = match body {
        Err((e, close)) => {
            let mut r = response::error(&e);
            if close {
                set(r.headers_mut(), "connection", "close");
            }
            r
        }
        Ok(_) if method == Method::OPTIONS => options(&app, &path, &parts.headers),
        Ok(body) => match find(&method, &path) {
            Found::Nothing => response::error(&Error::not_found(format!("no route for {path}"))),
            Found::WrongMethod(allowed) => response::method_not_allowed(&path, &allowed),
            Found::Route(route, params) => {
                routed = Some(route);
                let target = parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| path.clone(), |p| p.as_str().to_string());
                let out = dispatch(
                    app.clone(),
                    route,
                    (target, params),
                    parts.uri.query(),
                    parts.headers.clone(),
                    body,
                    peer,
                );
                // every line a handler logs carries the request id (LOG_FORMAT=json: `span.rid`)
                let span = tracing::info_span!("request", rid = %rid);
                let resp = guarded(&rid, &method, &path, out.instrument(span)).await;
                if !matches!(method, Method::GET | Method::HEAD) {
                    // it may have changed who may do what (logout, a user deleted, a role)
                    app.grants.invalidate();
                }
                resp
            }
        },
    };

    let h = resp.headers_mut();
    set(h, "x-request-id", &rid);
    if let Some(origin) = parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        if origin_allowed(&app, origin) {
            set(h, "access-control-allow-origin", origin);
            set(h, "access-control-expose-headers", CORS_EXPOSE);
            // beside a page file's `Vary: Accept-Encoding` (fields of one name add up)
            h.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    routed
        .map_or(&UNROUTED, |r| &r.stats)
        .record(resp.status().as_u16(), started);
    let line = AccessLine {
        rid: &rid,
        method: &method,
        path: &path,
        status: resp.status().as_u16(),
        started,
        peer,
    };
    line.write(&app);
    resp
}

/// The one log line of a request.
struct AccessLine<'a> {
    rid: &'a str,
    method: &'a Method,
    path: &'a str,
    status: u16,
    started: Instant,
    peer: SocketAddr,
}

impl AccessLine<'_> {
    /// At info level, except: a player asks for a part or a playlist about three times a
    /// second (at info level 128 watched cameras would write ~800 lines a second, past
    /// journald's rate limit, which then drops everything, warnings included, and into the
    /// flash), so those that succeed are debug; and a flood of refused requests writes one
    /// line a minute per address, not one each.
    fn write(&self, app: &App) {
        macro_rules! access {
            ($level:ident) => {
                tracing::$level!(
                    target: "vigia::http",
                    rid = %self.rid,
                    method = %self.method,
                    path = %self.path,
                    status = self.status,
                    ms = format_args!("{:.1}", self.started.elapsed().as_secs_f64() * 1000.0),
                    peer = %self.peer.ip(),
                    "request"
                )
            };
        }
        let media = self.path.starts_with("/api/cameras/streams/") && self.status < 400;
        let throttled = matches!(self.status, 429 | 503)
            && app.lograte.allow(self.peer.ip(), "throttled").is_none();
        if media || throttled {
            access!(debug);
        } else {
            access!(info);
        }
    }
}

/// Runs a handler, turning its error into the JSON error response and a panic into a 500.
async fn guarded(
    rid: &str,
    method: &Method,
    path: &str,
    out: impl std::future::Future<Output = Result<Response<Body>>>,
) -> Response<Body> {
    match AssertUnwindSafe(out).catch_unwind().await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            if e.kind == Kind::Internal {
                error!(rid = %rid, error = %e, "request failed");
            }
            response::error(&e)
        }
        Err(_) => {
            error!(rid = %rid, %method, %path, "handler panicked");
            response::error(&Error::internal("internal error"))
        }
    }
}

async fn dispatch(
    app: Arc<App>,
    route: &'static Route,
    (target, params): (String, Vec<String>),
    query: Option<&str>,
    headers: HeaderMap,
    body: Bytes,
    peer: SocketAddr,
) -> Result<Response<Body>> {
    let scraper = route.access == Access::Scraper && carries_metrics_token(&app, &headers);
    let (user, claims) = match route.access {
        Access::Public => (None, None),
        Access::Scraper if scraper => (None, None),
        Access::Player(scope) if !headers.contains_key(AUTHORIZATION) => {
            let token = query_value(query, "t").ok_or_else(|| {
                Error::unauthorized(
                    "authentication required: send 'Authorization: Bearer <token>' or use the hls_url",
                )
            })?;
            let id = params.first().map(String::as_str).unwrap_or("");
            (Some(player(&app, scope, id, &token).await?), None)
        }
        Access::Optional | Access::Token | Access::Player(_) | Access::Scraper => {
            match authenticate(&app, &headers).await? {
                Some((u, c)) => (Some(u), Some(c)),
                None if route.access != Access::Optional => {
                    return Err(Error::unauthorized(
                        "authentication required: send 'Authorization: Bearer <token>'",
                    ))
                }
                None => (None, None),
            }
        }
    };
    let ctx = Ctx {
        app,
        target,
        params,
        query: query.map(str::to_string),
        headers,
        body,
        user,
        claims,
        peer,
        scraper,
    };
    (route.handler)(ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_json_error() {
        let r = guarded("rid", &Method::GET, "/x", async {
            if true {
                panic!("boom");
            }
            Err(Error::internal("unreachable"))
        })
        .await;
        assert_eq!(r.status(), 500);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "internal_error");
        assert_eq!(v["error"], "internal error");
    }

    /// `/a/{id}/b` → `/a/{}/b`: a documented path in the route table's spelling.
    fn table_spelling(path: &str) -> String {
        path.split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    "{}"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The OpenAPI document describes every route of the table, and nothing else: each
    /// operation has a summary and a description, its path parameters, the security its
    /// access asks for, and a 401 wherever a token is checked.
    #[test]
    fn the_openapi_document_describes_exactly_the_route_table() {
        let doc: serde_json::Value =
            serde_json::from_slice(assets::OPENAPI_JSON.plain.unwrap()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = std::collections::BTreeMap::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let key = (method.to_uppercase(), table_spelling(path));
                for field in ["summary", "description", "operationId"] {
                    let text = op[field].as_str().unwrap_or("");
                    assert!(!text.trim().is_empty(), "{method} {path} has no {field}");
                }
                let named = path.matches('{').count();
                let params = op["parameters"]
                    .as_array()
                    .map_or(0, |p| p.iter().filter(|p| p["in"] == "path").count());
                assert_eq!(params, named, "{method} {path}: path parameters described");
                assert!(documented.insert(key, op.clone()).is_none());
            }
        }
        let mut missing = Vec::new();
        for r in &ROUTES {
            let key = (r.method.as_str().to_string(), r.path.to_string());
            let Some(op) = documented.remove(&key) else {
                missing.push(format!("{} {}", key.0, key.1));
                continue;
            };
            let security = op.get("security").unwrap_or(&doc["security"]).to_string();
            let expected = match r.access {
                Access::Public => "[]",
                Access::Optional => r#"[{},{"bearer":[]}]"#,
                Access::Token => r#"[{"bearer":[]}]"#,
                Access::Player(_) => r#"[{"bearer":[]},{"player":[]}]"#,
                Access::Scraper => r#"[{"bearer":[]}]"#,
            };
            assert_eq!(security, expected, "{} {}: security", key.0, key.1);
            if r.access != Access::Public {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{} {}: no 401",
                    key.0,
                    key.1
                );
            }
        }
        assert!(
            missing.is_empty(),
            "routes without a description: {missing:?}"
        );
        let extra: Vec<_> = documented.keys().collect();
        assert!(
            extra.is_empty(),
            "described but not in the route table: {extra:?}"
        );
    }

    /// Requests as clients send them, and what the one decode makes of them: the route, its
    /// parameters (percent-decoded once) and who may call it.
    #[test]
    fn the_route_table_decodes_each_request_once() {
        use PlayerScope::*;
        let table: &[(Method, &str, &str, &[&str], Access)] = &[
            (Method::GET, "/health", "/health", &[], Access::Public),
            (Method::HEAD, "/health", "/health", &[], Access::Public),
            (
                Method::GET,
                "/api/cameras/list/",
                "/api/cameras/list",
                &[],
                Access::Token,
            ),
            (
                Method::POST,
                "/api/auth/register",
                "/api/auth/register",
                &[],
                Access::Optional,
            ),
            (
                Method::GET,
                "/api/cameras/10.0.0.5-ch2",
                "/api/cameras/{}",
                &["10.0.0.5-ch2"],
                Access::Token,
            ),
            (
                Method::GET,
                "/api/cameras/fe80%3A%3A1",
                "/api/cameras/{}",
                &["fe80::1"],
                Access::Token,
            ),
            (
                Method::GET,
                "/api/cameras/streams/cam%201/part3.1.m4s",
                "/api/cameras/streams/{}/{}",
                &["cam 1", "part3.1.m4s"],
                Access::Player(Camera),
            ),
            (
                Method::GET,
                "/api/nvr/recordings/42/download",
                "/api/nvr/recordings/{}/download",
                &["42"],
                Access::Player(Recording),
            ),
            (
                Method::DELETE,
                "/api/nvr/recordings/42",
                "/api/nvr/recordings/{}",
                &["42"],
                Access::Token,
            ),
            (Method::GET, "/", "/", &[], Access::Public),
            (
                Method::GET,
                "/ui/app.js",
                "/ui/{}",
                &["app.js"],
                Access::Public,
            ),
            (
                Method::DELETE,
                "/api/users/3/cameras/a%2Fb",
                "/api/users/{}/cameras/{}",
                &["3", "a/b"],
                Access::Token,
            ),
        ];
        for (method, path, pattern, params, access) in table {
            match find(method, path) {
                Found::Route(r, p) => {
                    assert_eq!((r.path, r.access), (*pattern, *access), "{method} {path}");
                    assert_eq!(p, params.to_vec(), "{method} {path}");
                }
                _ => panic!("{method} {path}: no route"),
            }
        }
        // not routes: an empty or badly escaped parameter, an unknown path
        for path in [
            "/api/cameras/%zz",
            "/api/users//cameras/x",
            "/api/cameras/streams/a",
            "/ui/",
            "/nothing",
        ] {
            assert!(matches!(find(&Method::GET, path), Found::Nothing), "{path}");
        }
        // each player scope names what its tokens are issued for
        assert_eq!(Camera.claim("10.0.0.5"), "10.0.0.5");
        assert_eq!(Recording.claim("42"), "rec/42");
    }

    #[test]
    fn query_values_are_decoded_once() {
        assert_eq!(
            query_value(Some("t=a.b-c_d&x=1"), "t").as_deref(),
            Some("a.b-c_d")
        );
        assert_eq!(
            query_value(Some("a=1&camera_ip=10.0.0.1%2Dch2"), "camera_ip").as_deref(),
            Some("10.0.0.1-ch2")
        );
        assert_eq!(query_value(Some("q=a+b"), "q").as_deref(), Some("a b"));
        assert_eq!(query_value(Some("tt=1"), "t"), None);
        assert_eq!(query_value(None, "t"), None);
    }

    #[test]
    fn routing() {
        match find(&Method::GET, "/api/cameras/list") {
            Found::Route(r, p) => assert_eq!((r.path, p.len()), ("/api/cameras/list", 0)),
            _ => panic!("no match"),
        }
        match find(&Method::GET, "/api/cameras/192.168.1.5-ch2/") {
            Found::Route(r, p) => {
                assert_eq!(r.path, "/api/cameras/{}");
                assert_eq!(p, vec!["192.168.1.5-ch2"]);
            }
            _ => panic!("no match"),
        }
        match find(&Method::DELETE, "/api/users/3/cameras/fe80%3A%3A1") {
            Found::Route(_, p) => assert_eq!(p, vec!["3", "fe80::1"]),
            _ => panic!("no match"),
        }
        assert!(
            matches!(find(&Method::PATCH, "/api/users/3"), Found::WrongMethod(m) if m.contains(&"PUT"))
        );
        assert!(matches!(find(&Method::GET, "/api/nothing"), Found::Nothing));
        assert!(matches!(
            find(&Method::GET, "/api/users/%zz"),
            Found::Nothing
        ));
        // a literal path is its own resource: `/api/cameras/{}` does not answer for it
        for (method, path, allow) in [
            (Method::PUT, "/api/cameras/list", "GET, HEAD, OPTIONS"),
            (
                Method::DELETE,
                "/api/cameras/discover",
                "GET, POST, HEAD, OPTIONS",
            ),
        ] {
            match find(&method, path) {
                Found::WrongMethod(m) => assert_eq!(m.join(", "), allow, "{method} {path}"),
                _ => panic!("{method} {path} was routed"),
            }
        }
        assert!(matches!(
            find(&Method::PUT, "/api/cameras/lista"),
            Found::Route(r, _) if r.path == "/api/cameras/{}"
        ));
    }
}
