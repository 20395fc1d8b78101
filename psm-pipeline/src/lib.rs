//! # psm-pipeline
//!
//! The two workers that carry a session from its raw recording to durable storage, through
//! the control plane's lifecycle (`Ended → Encoding → Done-Encoded → Uploading →
//! Done-Uploaded`):
//!
//! - the [`Uploader`] claims Done-Encoded sessions, stores every file of the recording set
//!   (raw `.psmr`, exports, manifest last) in a [`psm_storage::RecordingStore`], verifies each,
//!   commits with its fencing token, and only then deletes the local copy;
//! - the [`Encoder`] claims Ended sessions, verifies the raw `.psmr` recording, writes the
//!   configured exports (asciicast, transcript, command index; for graphical sessions a video
//!   through ffmpeg and a contact sheet, see [`graphics`]), appends the seek index to an
//!   intact recording (atomically, see [`seek_index`]) and writes the manifest, encoding what
//!   is intact of a damaged recording, listing its gaps and putting a note on the session.
//!
//! Both hold a `dyn WorkQueue` (the in-process engine, or a remote control plane), renew
//! their lease while they work ([`LeaseKeeper`]), report failures so the engine backs off and eventually
//! marks the session Failed with the reason (local data kept), and stop taking work while a
//! disk they write to is nearly full ([`DiskGuard`]). Where files live on a node is
//! [`LocalLayout`] (psm-recording's, shared with the gateways); what they produce and where
//! they store it comes from the control plane's GetPAMSettings with command-line overrides
//! ([`settings`]).
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use psm_core::{Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId, Stage};
//! use psm_core::{clock::SystemClock, store::MemoryStore};
//! use psm_pipeline::{LocalLayout, Uploader, WorkerConfig, manifest::{Manifest, ManifestFile}};
//! use psm_storage::{Checksum, LocalConfig, StoreConfig};
//!
//! let engine = Arc::new(Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock), EngineConfig::default()));
//! let data = tempfile::tempdir()?;
//! let layout = LocalLayout::new(data.path().join("node"));
//! layout.create()?;
//!
//! // A session that a gateway recorded and an encoder encoded.
//! let gw = ProcessInstance::new("gateway-1")?;
//! let id = SessionId::new();
//! engine.open_session(NewSession { id, user: "alice".into(), target: "db1".into(),
//!     protocol: Protocol::Ssh, checkout_id: None, process_instance: gw.clone() }).await?;
//! std::fs::write(layout.raw_recording(id), b"raw bytes")?;
//! engine.end_session(id, &gw).await?;
//! let enc = engine.claim_for_encoding(&ProcessInstance::new("encoder-1")?, 1).await?.remove(0);
//! std::fs::create_dir_all(layout.exports_dir(id))?;
//! Manifest::new(id, ManifestFile { name: "recording.psmr".into(), kind: "raw".into(),
//!     size: 9, blake3: Checksum::of(b"raw bytes") }).write(&layout.exports_dir(id))?;
//! engine.complete(&enc, Default::default()).await?;
//!
//! let store = psm_storage::open(&StoreConfig::Local(LocalConfig::new(data.path().join("store"))))?;
//! let uploader = Arc::new(Uploader::new(engine.clone(), store, layout.clone(),
//!     WorkerConfig::new(ProcessInstance::new("uploader-1")?)));
//! let summary = uploader.run_until_idle().await;
//! assert_eq!(summary.completed, [id]);
//! assert_eq!(engine.session(id).await?.stage, Stage::DoneUploaded);
//! assert!(!layout.raw_recording(id).exists()); // deleted only after the verified upload
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod affinity;
pub mod disk;
pub mod encoder;
pub mod error;
pub mod events;
pub mod graphics;
pub mod layout;
pub mod lease;
pub mod manifest;
pub mod seek_index;
pub mod settings;
pub mod uploader;
pub mod worker;

pub use affinity::ClaimScope;
pub use disk::{DiskGuard, DiskSpace, MinFreeSpace};
pub use encoder::{Encoder, EncoderSettings, ExportKind};
pub use error::PipelineError;
pub use events::{EventSink, NoEvents, PipelineEvent, Step};
pub use layout::LocalLayout;
pub use lease::LeaseKeeper;
pub use uploader::Uploader;
pub use worker::{RunSummary, WorkerConfig};
