//! vigia: a lean NVR service.
//!
//! RTSP in (one session per camera), LL-HLS from RAM and crash-safe fragmented MP4 out, and a
//! REST API for LAN clients that keeps the old Flask backend's paths and JSON shapes.
//!
//! From the bottom up (no two of these import each other in a cycle; `scripts/module-cycles.py`
//! checks it):
//! - [`error`], [`clock`]: the error type and the clocks.
//! - [`store`]: the storage trait (redb by default, PostgreSQL with the `postgres` feature).
//! - [`config`]: settings from environment, `.env` and flags, validated once.
//! - [`auth`]: passwords, tokens, login throttling and the one permission check.
//! - [`camera`]: camera ids, RTSP URL templates, sealed credentials.
//! - [`system`]: host probes, sd_notify and the watchdog, background tasks, log rate.
//! - [`media`]: ingest, fan-out, fMP4, LL-HLS, recording.
//! - [`discovery`]: finding cameras on the LAN.
//! - [`fleet`]: several boxes on one database.
//! - [`services`]: the life cycles the API asks for (cameras).
//! - `flask` (with `postgres`): importing the old Flask backend's database.
//! - [`api`]: the route table and handlers on hyper, and [`api::App`], what they may reach.
//! - [`app`]: wiring, listener and shutdown; [`demo`] and [`camsim`] for trying it out.

pub mod api;
pub mod app;
pub mod auth;
pub mod camera;
pub mod camsim;
pub mod clock;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod error;
#[cfg(feature = "postgres")]
pub mod flask;
pub mod fleet;
pub mod media;
pub mod metrics;
pub mod services;
pub mod store;
pub mod system;
