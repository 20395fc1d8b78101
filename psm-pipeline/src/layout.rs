//! Where a node keeps recordings on its own disk: [`LocalLayout`], defined in psm-recording
//! (`psm_recording::layout`) so the gateways that write raw recordings and the workers that
//! read them name the same files, and the names a session's set has in the store.

pub use psm_recording::layout::{LocalLayout, MANIFEST_FILE};

/// The name the raw recording is stored under in a session's set.
pub const RAW_OBJECT_NAME: &str = "recording.psmr";

#[cfg(test)]
mod tests {
    #[test]
    fn the_manifest_has_one_name_locally_and_in_the_store() {
        assert_eq!(super::MANIFEST_FILE, psm_storage::layout::MANIFEST_NAME);
    }
}
