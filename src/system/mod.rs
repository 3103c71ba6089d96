//! Running under systemd: the notify protocol ([`notify`]) and the watchdog that pings only
//! while the service really works ([`watchdog`]).

pub mod notify;
pub mod watchdog;
