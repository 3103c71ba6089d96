//! vigia: a lean NVR service.
//!
//! RTSP in (one session per camera), LL-HLS from RAM and crash-safe fragmented MP4 out, and a
//! REST API for LAN clients that keeps the old Flask backend's paths and JSON shapes.
//!
//! - [`config`]: settings from environment, `.env` and flags, validated once.
//! - [`store`]: the storage trait (redb by default).
//! - [`auth`]: passwords, tokens, login throttling and the one permission check.
//! - [`camera`]: camera ids, RTSP URL templates, sealed credentials.
//! - [`api`]: the route table and handlers on hyper.
//! - [`app`]: wiring, listener and shutdown.

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
pub mod fleet;
pub mod media;
pub mod store;
pub mod system;
