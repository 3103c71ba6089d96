//! Running under systemd: the notify protocol ([`notify`]) and the watchdog that pings only
//! while the service really works ([`watchdog`]); what the host has left ([`host`]); the
//! background tasks that shutdown stops and joins ([`tasks`]).

pub mod host;
pub mod notify;
pub mod tasks;
pub mod watchdog;
