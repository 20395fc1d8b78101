//! The `.psmr` byte layout (see `docs/psmr.md`, which this module implements).
//!
//! ```text
//! file     = preamble frame* [footer [index-frame index-footer]]
//! preamble = magic(8) major(u16 LE) minor(u16 LE)
//! frame    = kind(u8) flags(u8) body_len(u32 LE) body signature(64)
//! footer   = trailer_offset(u64 LE) "PSMR-END"
//! index-footer = index_offset(u64 LE) "PSMR-IDX"
//! ```

pub(crate) mod codec;
pub(crate) mod crypto;
pub(crate) mod delta;
pub(crate) mod frame;
pub(crate) mod header;
pub(crate) mod index;
pub(crate) mod record;
pub(crate) mod stream;
pub(crate) mod trailer;

pub use frame::{MAGIC, VERSION_MAJOR, VERSION_MINOR};

/// Upper bound on a chunk's decompressed payload, enforced before decompressing (so a
/// hostile file cannot make a reader allocate more).
pub const MAX_CHUNK_RAW: usize = 16 << 20;
/// Upper bound on any frame's body.
pub const MAX_FRAME_BODY: u32 = 64 << 20;
