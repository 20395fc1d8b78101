//! The handlers, one file per group of endpoints.

pub mod claim;
pub mod directory;
pub mod live;
pub mod save;
pub mod session;
pub mod signers;
pub mod utility;
pub mod vault;
