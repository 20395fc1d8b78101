//! How the RDP gateway is configured: typed values only (the binary reads files and flags).

use std::net::SocketAddr;
use std::time::Duration;

use psm_core::ProcessInstance;

/// Which RDP side channels a session may use. Anything not allowed is never offered to the
/// client nor opened toward the target, so its bytes cannot pass at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelPolicy {
    /// Clipboard (`cliprdr`) between a native client and the target: text only, each
    /// paste at most `Limits::max_clipboard_bytes`, recorded when
    /// `RecordingPolicy::capture_clipboard` is on. Browser sessions have no clipboard.
    pub clipboard: bool,
    /// Drive redirection: the target gets the session drive, a folder on the gateway
    /// (`RdpGatewayConfig::drive`, which must be set), as a redirected drive; every file
    /// the target reads or writes there is recorded ([`crate::drive`]). The user's own
    /// drives are never relayed (the gateway terminates RDP on both sides).
    pub drives: bool,
    /// Printer redirection: the target gets the session printer (`PSM Printer`, a
    /// PostScript printer held by the gateway); each print job is saved in the session
    /// folder (`RdpGatewayConfig::drive`, which must be set) as `print-NNN.ps` and recorded
    /// ([`crate::drive`]). The user's own printers are never relayed. xrdp has no printer
    /// redirection: this is for Windows targets.
    pub printers: bool,
}

impl ChannelPolicy {
    /// Nothing but screen, keyboard and mouse.
    pub const DENY_ALL: ChannelPolicy = ChannelPolicy {
        clipboard: false,
        drives: false,
        printers: false,
    };
}

impl Default for ChannelPolicy {
    /// Everything denied: a privileged session gets side channels only when policy says so.
    fn default() -> Self {
        Self::DENY_ALL
    }
}

/// Which security the gateway accepts from targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TargetSecurity {
    /// NLA (CredSSP) when the target offers it, else TLS with the credential in the Client
    /// Info PDU (xrdp offers TLS only).
    #[default]
    NlaOrTls,
    /// NLA only: a target that refuses NLA is not logged in to.
    NlaOnly,
}

/// What the recorder keeps, and how much it may spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingPolicy {
    /// At most one changed-region frame event per this interval (changes in between are
    /// merged): bounds CPU and size on a busy desktop. Default 1 s: the recording is
    /// evidence, not a video stream (live viewers get every change).
    pub frame_interval: Duration,
    /// A full screenshot (keyframe) at least this often, so a player can seek and the
    /// `savescreenshot` contract has its periodic picture. Default 30 s.
    pub keyframe_interval: Duration,
    /// A changed region larger than this share of the screen (in percent) is stored as a
    /// whole-screen keyframe instead. Default 60.
    pub keyframe_area_percent: u8,
    /// Record clipboard text (the seed's `saveclipboard`). Default true.
    pub capture_clipboard: bool,
    /// What of the keyboard is recorded (the keys as text on the keyboard channel; the
    /// pointer is recorded whatever this says):
    /// [`InputPolicy::RedactEchoOff`](psm_recording::InputPolicy::RedactEchoOff) (the
    /// default, `redact-passwords`) records keys as typed except while a password is
    /// probably being typed (after a lock or secure-attention shortcut, see
    /// [`KeyText::password_prompt`](crate::input::KeyText::password_prompt)), which is
    /// recorded as `InputRedacted`; `RecordAll` records those too (flagged `echo_off`);
    /// `RedactAll` records only that keys were pressed. The target account's vaulted
    /// password is never recorded, whatever this says
    /// ([`SecretWatch`](crate::input::SecretWatch)).
    pub keystrokes: psm_recording::InputPolicy,
    /// Pointer moves are recorded at most this often (clicks always). Default 100 ms.
    pub pointer_interval: Duration,
    /// Store screen changes as raw palette-indexed pixels
    /// ([`psm_recording::EventKind::Pixels`]), compressed by the recording's zstd stream
    /// against earlier frames, instead of PNG stills. Default true: 3 to 8 times smaller on a text desktop (docs/benchmarks.md).
    /// False writes only `Frame` (PNG) events, for readers older than `Pixels`.
    pub raw_pixels: bool,
}

impl Default for RecordingPolicy {
    fn default() -> Self {
        Self {
            frame_interval: Duration::from_secs(1),
            keyframe_interval: Duration::from_secs(30),
            keyframe_area_percent: 60,
            capture_clipboard: true,
            keystrokes: psm_recording::InputPolicy::RedactEchoOff,
            pointer_interval: Duration::from_millis(100),
            raw_pixels: true,
        }
    }
}

/// Limits that keep one bad client from hurting the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// Most connections still in the handshake.
    pub max_handshakes: usize,
    /// The whole connection sequence with a client (TLS, credentials, capabilities) must
    /// finish within this time.
    pub handshake_timeout: Duration,
    /// Connecting and logging in to the target must finish within this time.
    pub target_connect_timeout: Duration,
    /// Widest desktop a client may ask for (pixels).
    pub max_width: u16,
    /// Tallest desktop a client may ask for (pixels).
    pub max_height: u16,
    /// Largest clipboard content passed or recorded, in bytes; larger pastes are refused
    /// (the clipboard-bomb defence).
    pub max_clipboard_bytes: usize,
    /// Most argon2 password checks at once (each takes ~19 MiB).
    pub max_concurrent_hashing: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 256,
            max_handshakes: 64,
            handshake_timeout: Duration::from_secs(30),
            target_connect_timeout: Duration::from_secs(20),
            max_width: 3840,
            max_height: 2160,
            max_clipboard_bytes: 1 << 20,
            max_concurrent_hashing: 4,
        }
    }
}

/// Everything the RDP gateway is configured with. Build with [`RdpGatewayConfig::new`] and
/// adjust fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RdpGatewayConfig {
    /// Where native RDP clients connect.
    pub listen: SocketAddr,
    /// This gateway's name in the control plane (owner of its sessions).
    pub process_instance: ProcessInstance,
    /// Between heartbeats (Polling); a terminate request takes effect within one interval.
    pub heartbeat_interval: Duration,
    /// Unanswered heartbeats before the session is locked or ended (psm-proxy's decision).
    pub heartbeat_policy: psm_proxy::HeartbeatPolicy,
    /// Between screenshots pushed to `RdpGatewayDeps::artifacts` (savescreenshot), the first
    /// at the start; zero: none. Default 30 s (the recording's keyframe interval).
    pub screenshot_interval: Duration,
    /// The desktop size used when a client does not say (and for browser sessions that
    /// ask for none).
    pub default_width: u16,
    /// See `default_width`.
    pub default_height: u16,
    /// Side channels.
    pub channels: ChannelPolicy,
    /// The recorder.
    pub recording: RecordingPolicy,
    /// Limits.
    pub limits: Limits,
    /// Which security targets must offer.
    pub target_security: TargetSecurity,
    /// The target used when a login names none (`alice` instead of `alice+web-01`).
    pub default_target: Option<String>,
    /// Where session drives live and their limits; required when `channels.drives` is
    /// allowed. Default none.
    pub drive: Option<crate::drive::DriveConfig>,
}

impl RdpGatewayConfig {
    /// Defaults: 10 s heartbeats, 1024x768 default desktop, every side channel denied.
    pub fn new(listen: SocketAddr, process_instance: ProcessInstance) -> Self {
        Self {
            listen,
            process_instance,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_policy: psm_proxy::HeartbeatPolicy::default(),
            screenshot_interval: Duration::from_secs(30),
            default_width: 1024,
            default_height: 768,
            channels: ChannelPolicy::default(),
            recording: RecordingPolicy::default(),
            limits: Limits::default(),
            target_security: TargetSecurity::default(),
            default_target: None,
            drive: None,
        }
    }
}

/// The name of a keystroke policy as `--keystrokes` and `[rdp] keystrokes` take it:
/// `record-all`, `redact-passwords` ([`InputPolicy::RedactEchoOff`]) or `redact-all`.
///
/// [`InputPolicy::RedactEchoOff`]: psm_recording::InputPolicy::RedactEchoOff
pub fn keystroke_policy_name(policy: psm_recording::InputPolicy) -> &'static str {
    match policy {
        psm_recording::InputPolicy::RecordAll => "record-all",
        psm_recording::InputPolicy::RedactAll => "redact-all",
        _ => "redact-passwords",
    }
}

/// The keystroke policy a name gives ([`keystroke_policy_name`]'s inverse).
///
/// ```
/// use psm_proxy_rdp::config::{keystroke_policy, keystroke_policy_name};
/// let p = keystroke_policy("redact-all").unwrap();
/// assert_eq!(keystroke_policy_name(p), "redact-all");
/// assert!(keystroke_policy("redact-some").is_err());
/// ```
pub fn keystroke_policy(name: &str) -> Result<psm_recording::InputPolicy, String> {
    match name {
        "record-all" => Ok(psm_recording::InputPolicy::RecordAll),
        "redact-passwords" => Ok(psm_recording::InputPolicy::RedactEchoOff),
        "redact-all" => Ok(psm_recording::InputPolicy::RedactAll),
        other => Err(format!(
            "keystrokes {other:?}: expected record-all, redact-passwords or redact-all"
        )),
    }
}
