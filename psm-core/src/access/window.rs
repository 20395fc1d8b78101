//! One access window: the days, dates, times of day (in a named time zone) and source
//! networks in which a role may use a grant.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::network::SourceNetworks;
use crate::error::CoreError;
use crate::id::truncate_for_error;
use crate::timestamp::Timestamp;

/// Longest window specification, in bytes.
pub const MAX_WINDOW_SPEC_LEN: usize = 4096;
/// Most time-of-day ranges in one window.
pub const MAX_TIME_RANGES: usize = 32;
/// Most date ranges in one window.
pub const MAX_DATE_RANGES: usize = 32;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const EVERY_DAY: u8 = 0x7f;
const MINUTES_PER_DAY: u16 = 24 * 60;

/// Where the user connects from, as the access check knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceCheck {
    /// The client's address as the gateway saw it.
    Known(IpAddr),
    /// The gateway did not say: a window that names networks does not let it in.
    Unknown,
    /// Networks are not checked (a heartbeat of a session whose address this control
    /// plane did not see at open: the address was checked then).
    Skip,
}

/// A time-of-day range in minutes since local midnight; `end <= start` runs past midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TimeRange {
    start: u16,
    end: u16,
}

/// When and from where a grant may be used. Every part that is given must match; a part
/// left out matches always.
///
/// The text form (what `psm windows add` stores and lists) is space-separated `key=value`
/// parts, each at most once:
///
/// | key | value | default |
/// |---|---|---|
/// | `days` | `mon-fri`, `sat,sun`, `fri-mon` (ranges wrap) | every day |
/// | `hours` | `08:00-18:00,20:00-22:30`; `22:00-06:00` runs past midnight (its early hours belong to the day it started); `24:00` ends a day | all day |
/// | `dates` | `2026-12-01..2026-12-31,2027-01-15` (inclusive) | any date |
/// | `tz` | an IANA time zone name, `Europe/Paris` | `UTC` |
/// | `from` | CIDR networks or addresses, `10.0.0.0/8,192.0.2.7,2001:db8::/32` | anywhere |
///
/// Days, dates and hours are read on the clock of `tz` (daylight saving included).
///
/// ```
/// use psm_core::access::{AccessWindow, SourceCheck};
/// use psm_core::Timestamp;
///
/// let w: AccessWindow = "days=mon-fri hours=08:00-18:00 tz=Europe/Paris from=10.0.0.0/8".parse()?;
/// // Wednesday 2026-12-09 09:30 in Paris is 08:30 UTC.
/// let at = Timestamp::from_micros(1_796_805_000_000_000);
/// let inside = SourceCheck::Known("10.1.2.3".parse().unwrap());
/// let outside = SourceCheck::Known("192.0.2.1".parse().unwrap());
/// assert!(w.allows(at, inside));
/// assert!(!w.allows(at, outside));
/// assert_eq!(w.to_string(), "days=mon-fri hours=08:00-18:00 tz=Europe/Paris from=10.0.0.0/8");
/// # Ok::<(), psm_core::CoreError>(())
/// ```
#[derive(Clone, Debug)]
pub struct AccessWindow {
    days: u8,
    hours: Vec<TimeRange>,
    dates: Vec<(Date, Date)>,
    zone_name: String,
    zone: TimeZone,
    networks: SourceNetworks,
}

impl PartialEq for AccessWindow {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for AccessWindow {}

fn bad(reason: impl Into<String>) -> CoreError {
    CoreError::InvalidInput {
        field: "window",
        reason: reason.into(),
    }
}

fn parse_day(s: &str) -> Result<u8, CoreError> {
    let lower = s.to_ascii_lowercase();
    let short = lower.get(..3).unwrap_or(&lower);
    let idx = DAY_NAMES
        .iter()
        .position(|d| *d == short)
        .filter(|_| {
            // Accept `mon` and full names (`monday`), nothing else.
            lower.len() == 3
                || matches!(
                    lower.as_str(),
                    "monday"
                        | "tuesday"
                        | "wednesday"
                        | "thursday"
                        | "friday"
                        | "saturday"
                        | "sunday"
                )
        })
        .ok_or_else(|| {
            bad(format!(
                "{:?} is not a day (mon, tue, wed, thu, fri, sat, sun)",
                truncate_for_error(s)
            ))
        })?;
    Ok(idx as u8)
}

fn parse_days(s: &str) -> Result<u8, CoreError> {
    let mut mask = 0u8;
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("an empty day in days="));
        }
        if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (parse_day(a)?, parse_day(b)?);
            let mut d = a;
            loop {
                mask |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        } else {
            mask |= 1 << parse_day(part)?;
        }
    }
    Ok(mask)
}

fn parse_minute(s: &str) -> Result<u16, CoreError> {
    let err = || {
        bad(format!(
            "{:?} is not a time of day (HH:MM, 00:00 to 24:00)",
            truncate_for_error(s)
        ))
    };
    let (h, m) = s.split_once(':').ok_or_else(err)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(err());
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let h: u16 = h.parse().map_err(|_| err())?;
    let m: u16 = m.parse().map_err(|_| err())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(err());
    }
    Ok(h * 60 + m)
}

fn parse_hours(s: &str) -> Result<Vec<TimeRange>, CoreError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        if out.len() == MAX_TIME_RANGES {
            return Err(bad(format!("more than {MAX_TIME_RANGES} hour ranges")));
        }
        let (a, b) = part.trim().split_once('-').ok_or_else(|| {
            bad(format!(
                "{:?} is not a time range (HH:MM-HH:MM)",
                truncate_for_error(part)
            ))
        })?;
        let (start, end) = (parse_minute(a)?, parse_minute(b)?);
        if start == MINUTES_PER_DAY {
            return Err(bad("a time range cannot start at 24:00"));
        }
        if start == end {
            return Err(bad(format!(
                "the time range {:?} is empty (start and end are the same; 00:00-24:00 is all day)",
                truncate_for_error(part)
            )));
        }
        out.push(TimeRange { start, end });
    }
    Ok(out)
}

fn parse_date(s: &str) -> Result<Date, CoreError> {
    let err = || {
        bad(format!(
            "{:?} is not a date (YYYY-MM-DD)",
            truncate_for_error(s)
        ))
    };
    // jiff accepts more than the plain form (e.g. signed years): hold it to YYYY-MM-DD.
    if s.len() != 10
        || !s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
    {
        return Err(err());
    }
    s.parse::<Date>().map_err(|_| err())
}

fn parse_dates(s: &str) -> Result<Vec<(Date, Date)>, CoreError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        if out.len() == MAX_DATE_RANGES {
            return Err(bad(format!("more than {MAX_DATE_RANGES} date ranges")));
        }
        let part = part.trim();
        let (a, b) = match part.split_once("..") {
            Some((a, b)) => (parse_date(a)?, parse_date(b)?),
            None => {
                let d = parse_date(part)?;
                (d, d)
            }
        };
        if b < a {
            return Err(bad(format!(
                "the date range {:?} ends before it starts",
                truncate_for_error(part)
            )));
        }
        out.push((a, b));
    }
    Ok(out)
}

fn parse_zone(s: &str) -> Result<TimeZone, CoreError> {
    // Only IANA names: a POSIX TZ string or a file path is not a zone an admin means here.
    let plausible = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('/')
        && !s.contains("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
    if !plausible {
        return Err(bad(format!(
            "{:?} is not a time zone name (e.g. Europe/Paris, America/New_York, UTC)",
            truncate_for_error(s)
        )));
    }
    TimeZone::get(s).map_err(|_| {
        bad(format!(
            "unknown time zone {:?} (an IANA name such as Europe/Paris)",
            truncate_for_error(s)
        ))
    })
}

fn fmt_minute(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn fmt_days(mask: u8) -> String {
    // Runs of three or more consecutive days (Monday first) print as a range.
    let mut parts = Vec::new();
    let mut d = 0u8;
    while d < 7 {
        if mask & (1 << d) == 0 {
            d += 1;
            continue;
        }
        let start = d;
        while d + 1 < 7 && mask & (1 << (d + 1)) != 0 {
            d += 1;
        }
        if d - start >= 2 {
            parts.push(format!(
                "{}-{}",
                DAY_NAMES[start as usize], DAY_NAMES[d as usize]
            ));
        } else {
            for x in start..=d {
                parts.push(DAY_NAMES[x as usize].to_owned());
            }
        }
        d += 1;
    }
    parts.join(",")
}

impl FromStr for AccessWindow {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_WINDOW_SPEC_LEN {
            return Err(bad(format!("longer than {MAX_WINDOW_SPEC_LEN} bytes")));
        }
        let mut days = None;
        let mut hours = None;
        let mut dates = None;
        let mut zone = None;
        let mut networks = None;
        for part in s.split_whitespace() {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                bad(format!(
                    "{:?} is not key=value (days=, hours=, dates=, tz=, from=)",
                    truncate_for_error(part)
                ))
            })?;
            let twice = |k: &str| bad(format!("{k}= is given twice"));
            match key {
                "days" => {
                    if days.replace(parse_days(value)?).is_some() {
                        return Err(twice(key));
                    }
                }
                "hours" => {
                    if hours.replace(parse_hours(value)?).is_some() {
                        return Err(twice(key));
                    }
                }
                "dates" => {
                    if dates.replace(parse_dates(value)?).is_some() {
                        return Err(twice(key));
                    }
                }
                "tz" => {
                    if zone
                        .replace((value.to_owned(), parse_zone(value)?))
                        .is_some()
                    {
                        return Err(twice(key));
                    }
                }
                "from" => {
                    if networks.replace(value.parse::<SourceNetworks>()?).is_some() {
                        return Err(twice(key));
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown part {:?} (days=, hours=, dates=, tz=, from=)",
                        truncate_for_error(other)
                    )));
                }
            }
        }
        let (zone_name, zone) = match zone {
            Some(z) => z,
            None => ("UTC".to_owned(), TimeZone::UTC),
        };
        Ok(Self {
            days: days.unwrap_or(EVERY_DAY),
            hours: hours.unwrap_or_default(),
            dates: dates.unwrap_or_default(),
            zone_name,
            zone,
            networks: networks.unwrap_or_default(),
        })
    }
}

impl fmt::Display for AccessWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.days != EVERY_DAY {
            parts.push(format!("days={}", fmt_days(self.days)));
        }
        if !self.hours.is_empty() {
            let h: Vec<String> = self
                .hours
                .iter()
                .map(|r| format!("{}-{}", fmt_minute(r.start), fmt_minute(r.end)))
                .collect();
            parts.push(format!("hours={}", h.join(",")));
        }
        if !self.dates.is_empty() {
            let d: Vec<String> = self
                .dates
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}..{b}")
                    }
                })
                .collect();
            parts.push(format!("dates={}", d.join(",")));
        }
        if self.zone_name != "UTC" || parts.is_empty() {
            parts.push(format!("tz={}", self.zone_name));
        }
        if !self.networks.is_empty() {
            parts.push(format!("from={}", self.networks));
        }
        f.write_str(&parts.join(" "))
    }
}

impl AccessWindow {
    /// The time zone's name.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// The source networks (empty: anywhere).
    pub fn networks(&self) -> &SourceNetworks {
        &self.networks
    }

    fn day_ok(&self, date: Date) -> bool {
        let wd = date.weekday().to_monday_zero_offset();
        self.days & (1 << wd) != 0
            && (self.dates.is_empty() || self.dates.iter().any(|(a, b)| *a <= date && date <= *b))
    }

    /// Whether the window is open at `now` (days, dates and hours only).
    pub fn open_at(&self, now: Timestamp) -> bool {
        let Ok(ts) = jiff::Timestamp::from_microsecond(now.as_micros()) else {
            return false;
        };
        let local = ts.to_zoned(self.zone.clone());
        let date = local.date();
        let minute = u16::from(local.hour() as u8) * 60 + u16::from(local.minute() as u8);
        if self.hours.is_empty() {
            return self.day_ok(date);
        }
        self.hours.iter().any(|r| {
            if r.start < r.end {
                r.start <= minute && minute < r.end && self.day_ok(date)
            } else if minute >= r.start {
                self.day_ok(date)
            } else {
                minute < r.end && date.yesterday().is_ok_and(|d| self.day_ok(d))
            }
        })
    }

    /// Whether `source` is in the window's networks (always, when it names none).
    pub fn admits(&self, source: SourceCheck) -> bool {
        if self.networks.is_empty() {
            return true;
        }
        match source {
            SourceCheck::Known(ip) => self.networks.contains(ip),
            SourceCheck::Unknown => false,
            SourceCheck::Skip => true,
        }
    }

    /// Whether a session from `source` may run at `now`.
    pub fn allows(&self, now: Timestamp, source: SourceCheck) -> bool {
        self.admits(source) && self.open_at(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> Timestamp {
        let ts: jiff::Timestamp = s.parse().expect("timestamp");
        Timestamp::from_micros(ts.as_microsecond())
    }

    fn w(s: &str) -> AccessWindow {
        s.parse().expect(s)
    }

    #[test]
    fn weekday_hours_in_a_zone() {
        let win = w("days=mon-fri hours=08:00-18:00 tz=Europe/Paris");
        // Wednesday 2026-12-09: Paris is UTC+1 in winter.
        assert!(win.open_at(at("2026-12-09T07:00:00Z")), "08:00 Paris");
        assert!(!win.open_at(at("2026-12-09T06:59:59Z")), "07:59 Paris");
        assert!(win.open_at(at("2026-12-09T16:59:00Z")), "17:59 Paris");
        assert!(
            !win.open_at(at("2026-12-09T17:00:00Z")),
            "18:00 Paris: end is exclusive"
        );
        // Saturday.
        assert!(!win.open_at(at("2026-12-12T10:00:00Z")));
        // Summer: UTC+2, so 06:00 UTC is 08:00 in Paris.
        assert!(win.open_at(at("2026-07-01T06:00:00Z")));
        assert!(
            !win.open_at(at("2026-07-01T16:00:00Z")),
            "18:00 Paris in summer"
        );
    }

    #[test]
    fn overnight_ranges_belong_to_the_day_they_start() {
        let win = w("days=fri hours=22:00-06:00");
        assert!(win.open_at(at("2026-12-11T23:00:00Z")), "Friday 23:00");
        assert!(
            win.open_at(at("2026-12-12T05:59:00Z")),
            "Saturday 05:59, started Friday"
        );
        assert!(!win.open_at(at("2026-12-12T06:00:00Z")));
        assert!(
            !win.open_at(at("2026-12-11T05:00:00Z")),
            "Friday 05:00 started Thursday"
        );
        assert!(!win.open_at(at("2026-12-12T23:00:00Z")), "Saturday 23:00");
    }

    #[test]
    fn dates_and_all_day() {
        let win = w("dates=2026-12-24..2026-12-26,2027-01-01");
        assert!(win.open_at(at("2026-12-24T00:00:00Z")));
        assert!(win.open_at(at("2026-12-26T23:59:59Z")));
        assert!(!win.open_at(at("2026-12-27T00:00:00Z")));
        assert!(win.open_at(at("2027-01-01T12:00:00Z")));
        let all = w("hours=00:00-24:00");
        assert!(all.open_at(at("2026-12-27T23:59:59Z")));
    }

    #[test]
    fn sources() {
        let win = w("from=10.0.0.0/8,192.0.2.7,2001:db8::/32");
        let k = |s: &str| SourceCheck::Known(s.parse().unwrap());
        assert!(win.admits(k("10.200.0.1")));
        assert!(win.admits(k("192.0.2.7")));
        assert!(!win.admits(k("192.0.2.8")));
        assert!(win.admits(k("2001:db8::1")));
        assert!(
            win.admits(k("::ffff:10.0.0.1")),
            "IPv4-mapped IPv6 is the IPv4 address"
        );
        assert!(!win.admits(SourceCheck::Unknown), "fails closed");
        assert!(win.admits(SourceCheck::Skip));
        assert!(
            w("days=mon").admits(SourceCheck::Unknown),
            "no networks: anywhere"
        );
    }

    #[test]
    fn refuses_bad_specs() {
        for bad in [
            "days=funday",
            "days=",
            "days=mon days=tue",
            "hours=08:00",
            "hours=08:00-08:00",
            "hours=25:00-26:00",
            "hours=24:00-01:00",
            "hours=8:5-9:00",
            "hours=+1:00-02:00",
            "dates=2026-13-01",
            "dates=2026-12-02..2026-12-01",
            "dates=+002026-12-01",
            "tz=Mars/Olympus",
            "tz=/etc/localtime",
            "tz=../../etc/passwd",
            "from=10.0.0.0/33",
            "from=example.com",
            "colour=blue",
            "days",
        ] {
            assert!(bad.parse::<AccessWindow>().is_err(), "{bad} accepted");
        }
        assert!(
            "x".repeat(MAX_WINDOW_SPEC_LEN + 1)
                .parse::<AccessWindow>()
                .is_err()
        );
    }

    #[test]
    fn canonical_text() {
        assert_eq!(
            w("days=sun,sat,mon,tue,wed").to_string(),
            "days=mon-wed,sat,sun"
        );
        assert_eq!(w("days=fri-mon").to_string(), "days=mon,fri-sun");
        assert_eq!(w("").to_string(), "tz=UTC");
        assert_eq!(
            w("tz=America/New_York hours=9:00-17:30").to_string(),
            "hours=09:00-17:30 tz=America/New_York"
        );
    }

    fn spec() -> impl Strategy<Value = String> {
        let day = prop::sample::select(DAY_NAMES.to_vec());
        let days =
            prop::collection::vec((day.clone(), prop::option::of(day)), 1..4).prop_map(|v| {
                v.into_iter()
                    .map(|(a, b)| b.map_or(a.to_owned(), |b| format!("{a}-{b}")))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        let range = (0u16..1440, 1u16..=1440)
            .prop_filter("non-empty", |(a, b)| a != b)
            .prop_map(|(a, b)| format!("{}-{}", fmt_minute(a), fmt_minute(b)));
        let hours = prop::collection::vec(range, 1..4).prop_map(|v| v.join(","));
        let zone = prop::sample::select(vec![
            "UTC",
            "Europe/Paris",
            "America/New_York",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
        ]);
        let net = (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(a, p)| format!("{}/{p}", std::net::Ipv4Addr::from(a)));
        let nets = prop::collection::vec(net, 1..4).prop_map(|v| v.join(","));
        (
            prop::option::of(days),
            prop::option::of(hours),
            prop::option::of(zone),
            prop::option::of(nets),
        )
            .prop_map(|(d, h, z, n)| {
                let mut parts = Vec::new();
                if let Some(d) = d {
                    parts.push(format!("days={d}"));
                }
                if let Some(h) = h {
                    parts.push(format!("hours={h}"));
                }
                if let Some(z) = z {
                    parts.push(format!("tz={z}"));
                }
                if let Some(n) = n {
                    parts.push(format!("from={n}"));
                }
                parts.join(" ")
            })
    }

    proptest! {
        /// Outside text never panics the parser, whatever it holds.
        #[test]
        fn parser_never_panics(s in ".{0,200}") {
            let _ = s.parse::<AccessWindow>();
        }

        /// Near-miss text (the right alphabet) never panics either.
        #[test]
        fn parser_never_panics_on_near_misses(s in "[a-z=0-9:,./ +-]{0,120}") {
            let _ = s.parse::<AccessWindow>();
        }

        /// A valid window prints in a form that parses back to the same window, deciding the
        /// same at any instant.
        #[test]
        fn canonical_round_trip(s in spec(), t in 1_700_000_000i64..1_900_000_000i64) {
            let a: AccessWindow = s.parse().unwrap();
            let b: AccessWindow = a.to_string().parse().unwrap();
            prop_assert_eq!(a.to_string(), b.to_string());
            let now = Timestamp::from_micros(t * 1_000_000);
            prop_assert_eq!(a.open_at(now), b.open_at(now));
        }

        /// An all-day range opens a window exactly when its days do.
        #[test]
        fn all_day_is_days_only(t in 1_700_000_000i64..1_900_000_000i64) {
            let now = Timestamp::from_micros(t * 1_000_000);
            let a: AccessWindow = "days=mon-fri hours=00:00-24:00 tz=Asia/Tokyo".parse().unwrap();
            let b: AccessWindow = "days=mon-fri tz=Asia/Tokyo".parse().unwrap();
            prop_assert_eq!(a.open_at(now), b.open_at(now));
        }
    }
}
