//! Running under systemd: the notify protocol ([`notify`]) and the watchdog that pings only
//! while the service really works ([`watchdog`]); what the host has left ([`host`]); the
//! background tasks that shutdown stops and joins ([`tasks`]); log lines a neighbour can
//! cause, rate-limited ([`lograte`]).

pub mod host;
pub mod lograte;
pub mod notify;
pub mod tasks;
pub mod watchdog;
