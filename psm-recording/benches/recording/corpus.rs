//! The reference corpus: four synthetic but realistic terminal sessions, generated
//! reproducibly (a fixed-seed PRNG, no dependence on the machine), written as asciicast v2.
//!
//! | session | what | size |
//! |---|---|---|
//! | `ls-lR` | a shell running `ls -lR /usr` with colours, read in 4 KiB pty reads | ~32 MB |
//! | `top` | a one-hour `top`-like full-screen redraw every second | ~9 MB |
//! | `editor` | a 20-minute vim-like session: typing, scrolling, redraws | ~4 MB |
//! | `log-tail` | `tail -f` of a busy syslog for one hour | ~10 MB |

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A cast being written: events with times in microseconds.
pub struct Cast {
    out: std::io::BufWriter<std::fs::File>,
    pub bytes: u64,
}

impl Cast {
    fn create(path: &Path, cols: u16, rows: u16) -> std::io::Result<Self> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(
            out,
            "{{\"version\": 2, \"width\": {cols}, \"height\": {rows}, \"timestamp\": 1700000000, \"env\": {{\"SHELL\": \"/bin/bash\", \"TERM\": \"xterm-256color\"}}}}"
        )?;
        Ok(Self { out, bytes: 0 })
    }

    fn event(&mut self, t_us: u64, code: &str, data: &str) -> std::io::Result<()> {
        let json = serde_json::to_string(data).map_err(std::io::Error::other)?;
        writeln!(
            self.out,
            "[{}.{:06}, \"{code}\", {json}]",
            t_us / 1_000_000,
            t_us % 1_000_000
        )?;
        if code == "o" {
            self.bytes += data.len() as u64;
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<u64> {
        self.out.flush()?;
        Ok(self.bytes)
    }
}

const WORDS: &[&str] = &[
    "lib",
    "share",
    "doc",
    "python3",
    "dist-packages",
    "locale",
    "man",
    "include",
    "linux",
    "x86_64-linux-gnu",
    "perl5",
    "gcc",
    "icons",
    "hicolor",
    "zoneinfo",
    "terminfo",
    "bin",
    "systemd",
    "security",
    "pkgconfig",
    "cmake",
    "firmware",
    "modules",
    "fonts",
    "truetype",
    "java",
    "node_modules",
    "ssl",
    "certs",
    "git-core",
    "applications",
    "mime",
    "X11",
];
const EXTS: &[&str] = &[
    "", ".so", ".so.6", ".h", ".py", ".pyc", ".gz", ".txt", ".conf", ".pm", ".png", ".svg",
    ".1.gz", ".json",
];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn name(r: &mut Rng) -> String {
    let mut s = r.pick(WORDS).to_owned();
    if r.below(3) == 0 {
        s.push('-');
        s.push_str(r.pick(WORDS));
    }
    if r.below(2) == 0 {
        let _ = write!(s, "{}", r.below(40));
    }
    s
}

/// `ls -lR /usr` in a colour terminal: directory headers, `total`, long listings.
fn ls_lr(path: &Path, target: u64) -> std::io::Result<u64> {
    let mut r = Rng::new(1);
    let mut c = Cast::create(path, 120, 40)?;
    let mut t = 0u64;
    c.event(
        t,
        "o",
        "\x1b[01;32malice@web-01\x1b[00m:\x1b[01;34m~\x1b[00m$ ",
    )?;
    for ch in "ls -lR /usr".chars() {
        t += 120_000 + r.below(80_000);
        c.event(t, "i", &ch.to_string())?;
        c.event(t + 900, "o", &ch.to_string())?;
    }
    t += 300_000;
    c.event(t, "i", "\r")?;
    let mut buf = String::from("\r\n");
    let mut dir = vec!["/usr".to_owned()];
    while c.bytes < target {
        let d = dir.join("/");
        let _ = write!(buf, "{d}:\r\ntotal {}\r\n", r.below(4000));
        let entries = 3 + r.below(40);
        for _ in 0..entries {
            let is_dir = r.below(5) == 0;
            let link = !is_dir && r.below(12) == 0;
            let exe = !is_dir && !link && r.below(6) == 0;
            let perms = if is_dir {
                "drwxr-xr-x"
            } else if link {
                "lrwxrwxrwx"
            } else if exe {
                "-rwxr-xr-x"
            } else {
                "-rw-r--r--"
            };
            let n = name(&mut r);
            let ext = if is_dir { "" } else { r.pick(EXTS) };
            let size = if is_dir { 4096 } else { r.below(2_000_000) };
            let _ = write!(
                buf,
                "{perms} {:>2} root root {size:>8} {} {:>2} {:>5} ",
                1 + r.below(12),
                r.pick(MONTHS),
                1 + r.below(28),
                if r.below(3) == 0 {
                    format!("{}", 2018 + r.below(7))
                } else {
                    format!("{:02}:{:02}", r.below(24), r.below(60))
                }
            );
            if is_dir {
                let _ = write!(buf, "\x1b[01;34m{n}\x1b[0m\r\n");
            } else if link {
                let _ = write!(
                    buf,
                    "\x1b[01;36m{n}{ext}\x1b[0m -> {}{ext}\r\n",
                    name(&mut r)
                );
            } else if exe {
                let _ = write!(buf, "\x1b[01;32m{n}{ext}\x1b[0m\r\n");
            } else {
                let _ = write!(buf, "{n}{ext}\r\n");
            }
        }
        buf.push_str("\r\n");
        // Walk the tree: down sometimes, up sometimes.
        match r.below(4) {
            0 if dir.len() > 1 => {
                dir.pop();
            }
            1 | 2 if dir.len() < 7 => dir.push(name(&mut r)),
            _ => {
                dir.pop();
                dir.push(name(&mut r));
                if dir.is_empty() {
                    dir.push("/usr".into());
                }
            }
        }
        if dir.first().map(String::as_str) != Some("/usr") {
            dir.insert(0, "/usr".into());
        }
        // pty reads of at most 4 KiB, about 30 MB/s.
        while buf.len() >= 4096 {
            let cut = (0..=4096)
                .rev()
                .find(|i| buf.is_char_boundary(*i))
                .unwrap_or(0);
            let rest = buf.split_off(cut);
            t += 130;
            c.event(t, "o", &buf)?;
            buf = rest;
        }
    }
    t += 100;
    buf.push_str("\x1b[01;32malice@web-01\x1b[00m:\x1b[01;34m~\x1b[00m$ ");
    c.event(t, "o", &buf)?;
    c.finish()
}

/// A one-hour `top`: a full redraw every second, values drifting.
fn top(path: &Path) -> std::io::Result<u64> {
    let mut r = Rng::new(2);
    let (cols, rows) = (120u16, 40u16);
    let mut c = Cast::create(path, cols, rows)?;
    let procs: Vec<(u64, String, String)> = (0..60)
        .map(|i| {
            (
                300 + i * 37 + r.below(30),
                ["root", "alice", "www-data", "postgres", "syslog"][r.below(5) as usize].to_owned(),
                [
                    "postgres",
                    "nginx",
                    "sshd",
                    "python3",
                    "java",
                    "node",
                    "systemd",
                    "rsyslogd",
                    "cron",
                    "bash",
                    "top",
                    "containerd",
                ][r.below(12) as usize]
                    .to_owned(),
            )
        })
        .collect();
    let mut cpu: Vec<f64> = procs.iter().map(|_| r.below(300) as f64 / 10.0).collect();
    let mut times: Vec<u64> = procs.iter().map(|_| r.below(100_000)).collect();
    c.event(0, "o", "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J")?;
    for s in 0..3600u64 {
        let t = s * 1_000_000 + 2_000 + r.below(3_000);
        let mut f = String::from("\x1b[H");
        let _ = write!(
            f,
            "top - {:02}:{:02}:{:02} up 12 days,  3:{:02},  3 users,  load average: {:.2}, {:.2}, {:.2}\x1b[K\r\n",
            (10 + s / 3600) % 24,
            (s / 60) % 60,
            s % 60,
            (s / 60) % 60,
            r.below(400) as f64 / 100.0,
            r.below(400) as f64 / 100.0,
            r.below(400) as f64 / 100.0
        );
        let _ = write!(
            f,
            "Tasks: \x1b[1m{}\x1b[m total,   \x1b[1m{}\x1b[m running, \x1b[1m{}\x1b[m sleeping\x1b[K\r\n",
            180 + r.below(5),
            1 + r.below(4),
            175 + r.below(5)
        );
        let _ = write!(
            f,
            "%Cpu(s): \x1b[1m{:>4.1}\x1b[m us, \x1b[1m{:>4.1}\x1b[m sy,  0.0 ni, \x1b[1m{:>4.1}\x1b[m id\x1b[K\r\n",
            r.below(500) as f64 / 10.0,
            r.below(200) as f64 / 10.0,
            40.0 + r.below(500) as f64 / 10.0
        );
        let _ = write!(
            f,
            "MiB Mem : \x1b[1m 15928.4\x1b[m total, \x1b[1m{:>8.1}\x1b[m free, \x1b[1m{:>8.1}\x1b[m used\x1b[K\r\n\x1b[K\r\n",
            2000.0 + r.below(3000) as f64,
            9000.0 + r.below(3000) as f64
        );
        let _ = write!(
            f,
            "\x1b[7m    PID USER      PR  NI    VIRT    RES    SHR S  %CPU  %MEM     TIME+ COMMAND{:width$}\x1b[m\r\n",
            "",
            width = usize::from(cols) - 79
        );
        for (i, ((pid, user, cmd), cpu_i)) in procs
            .iter()
            .zip(cpu.iter_mut())
            .enumerate()
            .take(usize::from(rows) - 7)
        {
            *cpu_i = (*cpu_i + (r.below(100) as f64 - 50.0) / 20.0).clamp(0.0, 99.9);
            times[i] += (*cpu_i * 10.0) as u64;
            let _ = write!(
                f,
                "{pid:>7} {user:<9} 20   0 {:>7} {:>6} {:>6} {} {:>5.1} {:>5.1} {:>3}:{:02}.{:02} {cmd}\x1b[K\r\n",
                100_000 + pid * 13,
                5000 + pid * 3,
                3000 + pid,
                if *cpu_i > 20.0 { "R" } else { "S" },
                cpu_i,
                (pid % 97) as f64 / 10.0,
                times[i] / 6000,
                (times[i] / 100) % 60,
                times[i] % 100
            );
        }
        c.event(t, "o", &f)?;
        if s % 600 == 599 {
            c.event(t + 400_000, "i", "1")?;
        }
    }
    c.event(3_600_000_000, "o", "\x1b[?25h\x1b[?1049l")?;
    c.finish()
}

/// Twenty minutes of a vim-like editor: typing echoes small updates, paging redraws.
fn editor(path: &Path) -> std::io::Result<u64> {
    let mut r = Rng::new(3);
    let (cols, rows) = (100u16, 30u16);
    let mut c = Cast::create(path, cols, rows)?;
    let mut t = 0u64;
    let mut lines: Vec<String> = (0..2000)
        .map(|i| {
            format!(
                "{:indent$}{} {} = {}({});",
                "",
                r.pick(&["let", "const", "var", "fn"]),
                name(&mut r),
                name(&mut r),
                i,
                indent = (r.below(4) * 4) as usize
            )
        })
        .collect();
    let mut top_line = 0usize;
    let redraw = |c: &mut Cast, t: u64, top: usize, lines: &[String]| -> std::io::Result<()> {
        let mut f = String::from("\x1b[H\x1b[2J");
        for (i, l) in lines
            .iter()
            .skip(top)
            .take(usize::from(rows) - 2)
            .enumerate()
        {
            let _ = write!(
                f,
                "\x1b[33m{:>5}\x1b[m \x1b[38;5;81m{}\x1b[m\r\n",
                top + i + 1,
                l
            );
        }
        let _ = write!(
            f,
            "\x1b[7m src/main.rs [+]{:>width$}\x1b[m",
            format!("{},1  {}%", top + 1, top * 100 / lines.len().max(1)),
            width = usize::from(cols) - 16
        );
        c.event(t, "o", &f)
    };
    c.event(t, "o", "\x1b[?1049h")?;
    redraw(&mut c, t, top_line, &lines)?;
    while t < 1_200_000_000 {
        match r.below(10) {
            0 => {
                top_line = (top_line + usize::from(rows) - 2).min(lines.len() - 1);
                t += 400_000 + r.below(2_000_000);
                c.event(t, "i", "\x06")?;
                redraw(&mut c, t + 3_000, top_line, &lines)?;
            }
            1 => {
                top_line = top_line.saturating_sub(usize::from(rows) - 2);
                t += 400_000 + r.below(2_000_000);
                c.event(t, "i", "\x02")?;
                redraw(&mut c, t + 3_000, top_line, &lines)?;
            }
            _ => {
                // Type a word on the current line, one key at a time.
                let row = 1 + r.below(u64::from(rows) - 3);
                let word = name(&mut r);
                let li = (top_line + row as usize - 1).min(lines.len() - 1);
                let mut col = lines[li].len() + 7;
                for ch in word.chars().chain(std::iter::once(' ')) {
                    t += 80_000 + r.below(250_000);
                    c.event(t, "i", &ch.to_string())?;
                    col += 1;
                    c.event(
                        t + 1_500,
                        "o",
                        &format!(
                            "\x1b[{row};{col}H\x1b[38;5;81m{ch}\x1b[m\x1b[{rows};{}H{},{}",
                            usize::from(cols) - 12,
                            li + 1,
                            col - 6
                        ),
                    )?;
                }
                lines[li].push_str(&word);
                lines[li].push(' ');
            }
        }
    }
    c.event(t + 500_000, "o", "\x1b[?1049l")?;
    c.finish()
}

/// `tail -f /var/log/syslog` for an hour: bursts of lines.
fn log_tail(path: &Path) -> std::io::Result<u64> {
    let mut r = Rng::new(4);
    let mut c = Cast::create(path, 160, 45)?;
    let mut t = 0u64;
    let hosts = ["web-01", "web-02", "db-01"];
    let procs = [
        "sshd", "CRON", "kernel", "systemd", "nginx", "postgres", "dockerd", "sudo",
    ];
    while t < 3_600_000_000 {
        t += r.below(1_500_000);
        let burst = if r.below(20) == 0 { 200 } else { 6 };
        let n = 1 + r.below(burst);
        let mut f = String::new();
        for _ in 0..n {
            let s = t / 1_000_000;
            let p = r.pick(&procs);
            let msg = match p {
                "sshd" => format!(
                    "Accepted publickey for {} from 10.0.{}.{} port {} ssh2: ED25519 SHA256:{:x}",
                    r.pick(&["alice", "bob", "deploy"]),
                    r.below(255),
                    r.below(255),
                    30000 + r.below(30000),
                    r.next()
                ),
                "CRON" => format!(
                    "(root) CMD (   cd / && run-parts --report /etc/cron.hourly) [{}]",
                    r.below(100000)
                ),
                "kernel" => format!(
                    "[{}.{:06}] TCP: request_sock_TCP: Possible SYN flooding on port {}. Sending cookies.",
                    s + 100000,
                    r.below(1_000_000),
                    r.below(65535)
                ),
                "nginx" => format!(
                    "10.1.{}.{} - - \"GET /api/v1/{}/{} HTTP/1.1\" {} {} {}ms",
                    r.below(255),
                    r.below(255),
                    name(&mut r),
                    r.below(100000),
                    r.pick(&["200", "200", "200", "304", "404", "500"]),
                    r.below(50000),
                    r.below(900)
                ),
                _ => format!(
                    "{} {} {} completed in {}ms (id {:x})",
                    name(&mut r),
                    r.pick(&["task", "job", "unit", "query"]),
                    name(&mut r),
                    r.below(5000),
                    r.next()
                ),
            };
            let _ = write!(
                f,
                "Nov 23 {:02}:{:02}:{:02} {} {p}[{}]: {msg}\r\n",
                10 + s / 3600,
                (s / 60) % 60,
                s % 60,
                r.pick(&hosts),
                1000 + r.below(30000)
            );
        }
        c.event(t, "o", &f)?;
    }
    c.finish()
}

/// Writes the corpus into `dir`; returns `(name, output bytes)` per session.
pub fn generate(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    std::fs::create_dir_all(dir)?;
    Ok(vec![
        ("ls-lR".into(), ls_lr(&dir.join("ls-lR.cast"), 33 << 20)?),
        ("top".into(), top(&dir.join("top.cast"))?),
        ("editor".into(), editor(&dir.join("editor.cast"))?),
        ("log-tail".into(), log_tail(&dir.join("log-tail.cast"))?),
        (
            "interactive".into(),
            interactive(&dir.join("interactive.cast"))?,
        ),
    ])
}

/// The bulk reference corpus of issue 4 (at least 50 MB of output).
pub const SESSIONS: &[&str] = &["ls-lR", "top", "editor", "log-tail"];
/// The interactive corpus: small pty reads, as most privileged sessions look.
pub const INTERACTIVE: &[&str] = &["interactive"];
/// Both.
pub const ALL: &[&str] = &["ls-lR", "top", "editor", "log-tail", "interactive"];

/// Splits `text` into pty reads of 16..=1024 bytes (at char boundaries), `gap` µs apart.
fn pty_reads(c: &mut Cast, r: &mut Rng, t: &mut u64, text: &str, gap: u64) -> std::io::Result<()> {
    let mut rest = text;
    while !rest.is_empty() {
        let want = (16 + r.below(1009) as usize).min(rest.len());
        let cut = (want..=rest.len())
            .find(|i| rest.is_char_boundary(*i))
            .unwrap_or(rest.len());
        let (piece, tail) = rest.split_at(cut);
        c.event(*t, "o", piece)?;
        *t += gap / 2 + r.below(gap.max(1));
        rest = tail;
    }
    Ok(())
}

/// What a command prints (bash on Debian, `ls --color`, git, systemctl...).
fn command_output(r: &mut Rng, cmd: &str, cwd: &str) -> String {
    let mut o = String::new();
    let word = cmd.split_whitespace().next().unwrap_or("");
    match word {
        "ls" => {
            let n = 5 + r.below(30);
            let long = cmd.contains("-l");
            if long {
                let _ = write!(o, "total {}\r\n", r.below(400));
            }
            for i in 0..n {
                let d = r.below(4) == 0;
                let n = name(r);
                let ext = if d { "" } else { r.pick(EXTS) };
                if long {
                    let _ = write!(
                        o,
                        "{} 1 alice alice {:>7} {} {:>2} {:02}:{:02} ",
                        if d { "drwxr-xr-x" } else { "-rw-r--r--" },
                        if d { 4096 } else { r.below(90_000) },
                        r.pick(MONTHS),
                        1 + r.below(28),
                        r.below(24),
                        r.below(60)
                    );
                }
                if d {
                    let _ = write!(o, "\x1b[01;34m{n}\x1b[0m");
                } else {
                    let _ = write!(o, "{n}{ext}");
                }
                o.push_str(if long || i % 4 == 3 { "\r\n" } else { "  " });
            }
            if !o.ends_with('\n') {
                o.push_str("\r\n");
            }
        }
        "git" if cmd.contains("status") => {
            let _ = write!(
                o,
                "On branch \x1b[1mmain\x1b[m\r\nYour branch is up to date with 'origin/main'.\r\n\r\nChanges not staged for commit:\r\n  (use \"git add <file>...\" to update what will be committed)\r\n"
            );
            for _ in 0..1 + r.below(6) {
                let _ = write!(o, "\t\x1b[31mmodified:   src/{}.rs\x1b[m\r\n", name(r));
            }
            o.push_str(
                "\r\nno changes added to commit (use \"git add\" and/or \"git commit -a\")\r\n",
            );
        }
        "git" => {
            for _ in 0..10 {
                let _ = write!(
                    o,
                    "\x1b[33m{:07x}\x1b[m {} {} in {}\r\n",
                    r.next() & 0xfff_ffff,
                    r.pick(&["Fix", "Add", "Remove", "Refactor", "Document"]),
                    name(r),
                    name(r)
                );
            }
        }
        "cat" | "tail" | "journalctl" => {
            for i in 0..10 + r.below(40) {
                if word == "cat" {
                    let _ = write!(
                        o,
                        "{}{}: {}\r\n",
                        "  ".repeat((i % 3) as usize),
                        name(r),
                        r.below(10_000)
                    );
                } else {
                    let _ = write!(
                        o,
                        "Nov 23 10:{:02}:{:02} web-01 {}[{}]: {} {} {}\r\n",
                        r.below(60),
                        r.below(60),
                        r.pick(&["nginx", "sshd", "app", "systemd"]),
                        1000 + r.below(9000),
                        name(r),
                        r.pick(&["started", "stopped", "failed", "ok"]),
                        r.below(100_000)
                    );
                }
            }
        }
        "ps" => {
            for _ in 0..2 + r.below(5) {
                let _ = write!(
                    o,
                    "alice    {:>6}  {:.1}  {:.1} {:>7} {:>6} pts/0    S+   10:{:02}   0:00 {}\r\n",
                    1000 + r.below(60_000),
                    r.below(50) as f64 / 10.0,
                    r.below(50) as f64 / 10.0,
                    r.below(900_000),
                    r.below(90_000),
                    r.below(60),
                    name(r)
                );
            }
        }
        "df" => {
            o.push_str("Filesystem      Size  Used Avail Use% Mounted on\r\n");
            for m in ["/", "/boot", "/var", "/home", "/srv/data"] {
                let _ = write!(
                    o,
                    "/dev/sda{}        {}G  {}G  {}G  {}% {m}\r\n",
                    1 + r.below(5),
                    20 + r.below(400),
                    r.below(200),
                    r.below(200),
                    r.below(100)
                );
            }
        }
        "sudo" => {
            o.push_str("[sudo] password for alice: ");
        }
        "cd" | "export" | "clear" => {
            if word == "clear" {
                o.push_str("\x1b[H\x1b[2J\x1b[3J");
            }
        }
        _ => {
            let _ = write!(o, "{}: {}\r\n", name(r), r.below(1_000_000));
        }
    }
    let _ = cwd;
    o
}

/// An hour of ordinary shell work over SSH: prompts (with a title escape), key-by-key echo,
/// typos and backspaces, tab completion, history recall, short command outputs in small pty
/// reads, a sudo password typed with the echo off, and think time between commands.
fn interactive(path: &Path) -> std::io::Result<u64> {
    let mut r = Rng::new(5);
    let mut c = Cast::create(path, 120, 35)?;
    let mut t = 0u64;
    let commands = [
        "ls",
        "ls -la",
        "git status",
        "git log --oneline -n 10",
        "cat config.yaml",
        "tail -n 30 /var/log/syslog",
        "ps aux | grep app",
        "df -h",
        "cd src",
        "cd ..",
        "journalctl -u app -n 20",
        "sudo systemctl restart app",
        "make check",
        "export RUST_LOG=debug",
        "clear",
    ];
    let mut history: Vec<String> = Vec::new();
    let mut cwd = String::from("~/src/app");
    let prompt = |cwd: &str| {
        format!(
            "\x1b]0;alice@web-01: {cwd}\x07\x1b[01;32malice@web-01\x1b[00m:\x1b[01;34m{cwd}\x1b[00m$ "
        )
    };
    c.event(t, "o", &format!("Linux web-01 6.1.0-13-amd64 #1 SMP Debian x86_64\r\n\r\nLast login: Thu Nov 23 09:12:44 2023 from 10.0.0.7\r\n{}", prompt(&cwd)))?;
    while t < 3_600_000_000 {
        // Think.
        t += if r.below(12) == 0 {
            60_000_000 + r.below(180_000_000)
        } else {
            1_500_000 + r.below(20_000_000)
        };
        let recall = !history.is_empty() && r.below(5) == 0;
        let cmd = if recall {
            // Up arrow: bash rewrites the line with the previous command.
            let back = 1 + r.below(history.len().min(3) as u64) as usize;
            let mut shown = String::new();
            for _ in 0..back {
                c.event(t, "i", "\x1b[A")?;
                let h = history[history.len() - 1 - (back - 1)].clone();
                let erase = "\x08".repeat(shown.len());
                c.event(t + 400 + r.below(600), "o", &format!("{erase}{h}\x1b[K"))?;
                shown = h;
                t += 150_000 + r.below(400_000);
            }
            shown
        } else {
            let cmd = r.pick(&commands).to_owned();
            let mut typed = 0;
            let chars: Vec<char> = cmd.chars().collect();
            while typed < chars.len() {
                t += 40_000 + r.below(220_000);
                if typed > 2 && r.below(25) == 0 {
                    // A typo, then backspace.
                    let wrong = (b'a' + r.below(26) as u8) as char;
                    c.event(t, "i", &wrong.to_string())?;
                    c.event(t + 300 + r.below(1200), "o", &wrong.to_string())?;
                    t += 150_000 + r.below(300_000);
                    c.event(t, "i", "\x7f")?;
                    c.event(t + 300 + r.below(1200), "o", "\x08\x1b[K")?;
                    continue;
                }
                if typed > 3 && chars[typed - 1] != ' ' && r.below(12) == 0 {
                    // Tab completes the rest of the word.
                    let end = chars[typed..]
                        .iter()
                        .position(|ch| *ch == ' ')
                        .map_or(chars.len(), |p| typed + p);
                    let rest: String = chars[typed..end].iter().collect();
                    c.event(t, "i", "\t")?;
                    c.event(
                        t + 2_000 + r.below(8_000),
                        "o",
                        if rest.is_empty() { "\x07" } else { &rest },
                    )?;
                    typed = end;
                    continue;
                }
                let ch = chars[typed].to_string();
                c.event(t, "i", &ch)?;
                c.event(t + 300 + r.below(1200), "o", &ch)?;
                typed += 1;
            }
            cmd
        };
        t += 200_000 + r.below(600_000);
        c.event(t, "i", "\r")?;
        t += 500 + r.below(1500);
        c.event(t, "o", "\r\n")?;
        t += 2_000 + r.below(30_000);
        let out = command_output(&mut r, &cmd, &cwd);
        if cmd.starts_with("sudo") {
            c.event(t, "o", &out)?;
            // The password, typed with the echo off (asciinema records it; PSM redacts it).
            for _ in 0..10 {
                t += 80_000 + r.below(150_000);
                c.event(t, "i", &((b'a' + r.below(26) as u8) as char).to_string())?;
            }
            t += 100_000;
            c.event(t, "i", "\r")?;
            c.event(t + 800, "o", "\r\n")?;
            t += 300_000 + r.below(2_000_000);
        } else if cmd.starts_with("make") {
            // A build: lines over several seconds.
            for i in 0..5 + r.below(20) {
                t += 100_000 + r.below(900_000);
                c.event(
                    t,
                    "o",
                    &format!(
                        "   Compiling {} v0.{}.{} (/home/alice/src/app/{})\r\n",
                        name(&mut r),
                        r.below(9),
                        i,
                        name(&mut r)
                    ),
                )?;
            }
            t += 500_000;
            c.event(t, "o", &format!("    Finished `dev` profile [unoptimized + debuginfo] target(s) in {}.{:02}s\r\n", r.below(60), r.below(100)))?;
        } else {
            pty_reads(&mut c, &mut r, &mut t, &out, 200)?;
        }
        if cmd == "cd src" {
            cwd = "~/src/app/src".into();
        } else if cmd == "cd .." {
            cwd = "~/src/app".into();
        }
        t += 1_000 + r.below(3_000);
        c.event(t, "o", &prompt(&cwd))?;
        if !recall {
            history.push(cmd);
        }
    }
    c.event(t + 1_000_000, "i", "\x04")?;
    c.event(t + 1_001_000, "o", "logout\r\n")?;
    c.finish()
}
