//! Domain services: what the API (and the demo) ask for, each owning one life cycle and
//! holding only the handles it needs.
//!
//! - [`cameras`]: add, change and delete a camera, and what that implies for its session,
//!   its recording and its node.

//! - [`users`]: users, their roles, passwords and sessions, and the cameras assigned to them.

pub mod cameras;
pub mod users;
