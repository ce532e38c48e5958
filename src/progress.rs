//! The one progress display: everything that reports progress on stderr
//! goes through here (downloads, the realizer's steps, the store's bars).
//!
//! The binary installs a [`Mode`] once ([`install`]); until it does, and in
//! the library's own tests, the mode is [`Mode::None`] and nothing is
//! printed.
//!
//! - [`Mode::Tty`]: a live display (indicatif's `MultiProgress`): a header
//!   with the plan's totals (files and bytes to fetch, steps) and what is
//!   done of them, then one line per active worker: a download's bytes,
//!   rate and ETA (a spinner and the bytes so far when its size is
//!   unknown), or a step's builder and name. Every line is finished when
//!   the work is ([`finish`] leaves the header with the final totals).
//! - [`Mode::Plain`]: one timestamped line per finished step (with the
//!   NAR size of its output) or download (with its size):
//!   `[  12.3s] unpack-wheel torch-… (1.40 GiB) done in 8.1s`; a summary
//!   line every 10 s (`[  20.0s] 12/160 steps, 1.10 GiB/2.70 GiB fetched`),
//!   for logs and CI.
//! - [`Mode::None`] prints nothing.
//!
//! Log lines ([`suspend`], used by the binary's log writer) are printed
//! above the live display, never through it. Progress only ever goes to
//! stderr. Colour is used on a terminal only, and never when `NO_COLOR`
//! is set.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The live display (a terminal).
    Tty,
    /// One line per finished step and a summary every 10 s.
    Plain,
    /// Nothing.
    None,
}

/// How often plain mode prints a summary line.
const PLAIN_INTERVAL: Duration = Duration::from_secs(10);

struct Reporter {
    mode: Mode,
    color: bool,
    start: Instant,
    files_total: AtomicUsize,
    files_done: AtomicUsize,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    steps_total: AtomicUsize,
    steps_done: AtomicUsize,
    /// Tty: the display, and its header line once there is work to show.
    multi: Option<MultiProgress>,
    header: OnceLock<ProgressBar>,
    /// Plain: the summary thread's stop flag.
    stop: Arc<(Mutex<bool>, Condvar)>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Serializes plain lines and log lines.
    out: Mutex<()>,
    /// Set by [`finish`]: nothing more is shown.
    finished: std::sync::atomic::AtomicBool,
}

static REPORTER: OnceLock<Reporter> = OnceLock::new();

fn reporter() -> Option<&'static Reporter> {
    REPORTER
        .get()
        .filter(|r| r.mode != Mode::None && !r.finished.load(Ordering::Relaxed))
}

/// Whether `NO_COLOR` asks for no colour (set and not empty).
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Choose how progress is shown for this process (the first call wins).
pub fn install(mode: Mode) {
    let color = mode == Mode::Tty && !no_color();
    let multi = (mode == Mode::Tty)
        .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
    let r = Reporter {
        mode,
        color,
        start: Instant::now(),
        files_total: AtomicUsize::new(0),
        files_done: AtomicUsize::new(0),
        bytes_total: AtomicU64::new(0),
        bytes_done: AtomicU64::new(0),
        steps_total: AtomicUsize::new(0),
        steps_done: AtomicUsize::new(0),
        multi,
        header: OnceLock::new(),
        stop: Arc::new((Mutex::new(false), Condvar::new())),
        ticker: Mutex::new(None),
        out: Mutex::new(()),
        finished: std::sync::atomic::AtomicBool::new(false),
    };
    if REPORTER.set(r).is_err() {
        return;
    }
    let Some(r) = REPORTER.get() else { return };
    if mode == Mode::Plain {
        let stop = r.stop.clone();
        let handle = std::thread::spawn(move || {
            let (flag, cv) = &*stop;
            let mut stopped = flag.lock().expect("progress stop flag");
            let mut next = PLAIN_INTERVAL;
            loop {
                let Some(r) = REPORTER.get() else { return };
                let wait = next.saturating_sub(r.start.elapsed());
                let (s, _) = cv.wait_timeout(stopped, wait).expect("progress stop flag");
                stopped = s;
                if *stopped {
                    return;
                }
                if r.start.elapsed() >= next {
                    r.plain_line(&r.summary());
                    next += PLAIN_INTERVAL;
                }
            }
        });
        *r.ticker.lock().expect("progress ticker") = Some(handle);
    }
}

/// The mode installed (`None` before [`install`]).
pub fn mode() -> Mode {
    REPORTER.get().map_or(Mode::None, |r| r.mode)
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
        .progress_chars("=> ")
}

impl Reporter {
    fn elapsed(&self) -> String {
        format!("[{:>6.1}s]", self.start.elapsed().as_secs_f64())
    }

    fn plain_line(&self, text: &str) {
        let _g = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(std::io::stderr().lock(), "{} {text}", self.elapsed());
    }

    /// `12/160 steps, 1.10 GiB/2.70 GiB fetched (3/34 files)`.
    fn totals(&self) -> String {
        let steps = format!(
            "{}/{} steps",
            self.steps_done.load(Ordering::Relaxed),
            self.steps_total.load(Ordering::Relaxed)
        );
        let files = self.files_total.load(Ordering::Relaxed);
        if files == 0 {
            return steps;
        }
        format!(
            "{steps}, {}/{} fetched ({}/{files} files)",
            HumanBytes(self.bytes_done.load(Ordering::Relaxed)),
            HumanBytes(self.bytes_total.load(Ordering::Relaxed)),
            self.files_done.load(Ordering::Relaxed),
        )
    }

    fn summary(&self) -> String {
        self.totals()
    }

    /// The header line, made when there is first work to show.
    fn header(&self) -> Option<&ProgressBar> {
        let multi = self.multi.as_ref()?;
        Some(self.header.get_or_init(|| {
            let header = multi.insert(0, ProgressBar::new_spinner());
            header.set_style(style(if self.color {
                "{spinner:.cyan} {prefix:.bold} {wide_msg}"
            } else {
                "{spinner} {prefix} {wide_msg}"
            }));
            header.set_prefix("envbuild");
            header.enable_steady_tick(Duration::from_millis(120));
            header
        }))
    }

    fn update_header(&self) {
        if let Some(header) = self.header() {
            header.set_message(self.totals());
        }
    }

    /// A worker line in the live display, below the header.
    fn line(&self, template: &str, len: Option<u64>, msg: String) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let pb = match len {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        let pb = multi.add(pb);
        pb.set_style(style(template));
        pb.set_message(msg);
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }
}

/// Add to the plan's totals: `files` files of `bytes` to fetch.
pub fn plan_fetch(files: usize, bytes: u64) {
    if let Some(r) = reporter() {
        r.files_total.fetch_add(files, Ordering::Relaxed);
        r.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        r.update_header();
    }
}

/// Add `n` steps to the plan's total.
pub fn plan_steps(n: usize) {
    if let Some(r) = reporter() {
        r.steps_total.fetch_add(n, Ordering::Relaxed);
        r.update_header();
    }
}

/// A step found already realized: done without work.
pub fn step_reused() {
    if let Some(r) = reporter() {
        r.steps_done.fetch_add(1, Ordering::Relaxed);
        r.update_header();
    }
}

/// A step being built: its line lasts until [`Step::done`] (or drop,
/// when it failed).
pub struct Step {
    what: String,
    started: Instant,
    bar: Option<ProgressBar>,
}

/// A step starts building: `builder` (e.g. `unpack-wheel`) on `name`.
pub fn step(builder: &str, name: &str) -> Step {
    let what = format!("{builder} {name}");
    let bar = reporter().map(|r| {
        let template = if r.color {
            "  {spinner:.green} {msg} {elapsed:.dim}"
        } else {
            "  {spinner} {msg} {elapsed}"
        };
        r.line(template, None, what.clone())
    });
    Step {
        what,
        started: Instant::now(),
        bar,
    }
}

impl Step {
    /// The step finished: counted, its line removed (tty) or printed
    /// (plain).
    pub fn done(self) {
        self.finished(None)
    }

    /// [`Step::done`], with the size of what it made (its NAR size) shown
    /// in the plain line.
    pub fn done_with_size(self, size: u64) {
        self.finished(Some(size))
    }

    fn finished(mut self, size: Option<u64>) {
        let Some(r) = reporter() else { return };
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        r.steps_done.fetch_add(1, Ordering::Relaxed);
        if r.mode == Mode::Plain {
            let size = size.map(|s| format!(" ({})", HumanBytes(s)));
            r.plain_line(&format!(
                "{}{} done in {:.1}s",
                self.what,
                size.unwrap_or_default(),
                self.started.elapsed().as_secs_f64()
            ));
        }
        r.update_header();
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A download in progress.
pub struct Download {
    name: String,
    size: Option<u64>,
    /// Bytes counted into the header so far.
    counted: AtomicU64,
    started: Instant,
    bar: Option<ProgressBar>,
}

/// A download of `name` starts; `size` when it is known.
pub fn download(name: &str, size: Option<u64>) -> Download {
    let bar = reporter().map(|r| {
        let template = match (size.is_some(), r.color) {
            (true, true) => {
                "  {msg} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} [{bar:30.cyan/blue}]"
            }
            (true, false) => "  {msg} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} [{bar:30}]",
            (false, true) => "  {spinner:.green} {msg} {bytes} {bytes_per_sec}",
            (false, false) => "  {spinner} {msg} {bytes} {bytes_per_sec}",
        };
        r.line(template, size, format!("fetch {name}"))
    });
    Download {
        name: name.to_string(),
        size,
        counted: AtomicU64::new(0),
        started: Instant::now(),
        bar,
    }
}

impl Download {
    /// `done` bytes so far (a retry may start again from fewer), of
    /// `total` when the server said.
    pub fn set(&self, done: u64, total: Option<u64>) {
        let Some(r) = reporter() else { return };
        if let Some(bar) = &self.bar {
            // The pinned size is the bar's length; a server's total only
            // when there is none (a spinner never becomes a full bar).
            if self.size.is_none() {
                if let Some(t) = total.filter(|&t| t > 0) {
                    if bar.length() != Some(t) {
                        bar.set_style(style(
                            if r.color {
                                "  {msg} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} [{bar:30.cyan/blue}]"
                            } else {
                                "  {msg} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} [{bar:30}]"
                            },
                        ));
                        bar.set_length(t);
                    }
                }
            }
            bar.set_position(done);
        }
        let before = self.counted.swap(done, Ordering::Relaxed);
        if done >= before {
            r.bytes_done.fetch_add(done - before, Ordering::Relaxed);
        } else {
            r.bytes_done.fetch_sub(before - done, Ordering::Relaxed);
        }
        r.update_header();
    }

    /// The download finished with `len` bytes.
    pub fn done(mut self, len: u64) {
        let Some(r) = reporter() else { return };
        self.set(len, Some(len));
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        r.files_done.fetch_add(1, Ordering::Relaxed);
        if r.mode == Mode::Plain {
            r.plain_line(&format!(
                "fetch {} ({}) done in {:.1}s",
                self.name,
                HumanBytes(len),
                self.started.elapsed().as_secs_f64()
            ));
        }
        r.update_header();
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A counted bar of `len` items (e.g. `store verify`): `what` is its label.
pub struct Counter {
    bar: Option<ProgressBar>,
}

/// A counted bar (tty only; plain and none show nothing until the result).
pub fn counter(what: &str, len: u64) -> Counter {
    let bar = reporter().filter(|r| r.mode == Mode::Tty).map(|r| {
        let template = if r.color {
            "  {prefix} [{bar:30.cyan/blue}] {pos}/{len} {wide_msg}"
        } else {
            "  {prefix} [{bar:30}] {pos}/{len} {wide_msg}"
        };
        let bar = r.line(template, Some(len), String::new());
        bar.set_prefix(what.to_string());
        bar
    });
    Counter { bar }
}

impl Counter {
    pub fn set(&self, pos: u64, len: u64, msg: impl Into<std::borrow::Cow<'static, str>>) {
        if let Some(bar) = &self.bar {
            bar.set_length(len);
            bar.set_position(pos);
            bar.set_message(msg);
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A message for the user while work goes on, above the live display (tty)
/// or as a timestamped line (plain); nothing with no progress.
pub fn message(text: &str) {
    let Some(r) = REPORTER.get().filter(|r| r.mode != Mode::None) else {
        return;
    };
    match &r.multi {
        Some(multi) if !r.finished.load(Ordering::Relaxed) => {
            let _ = multi.println(text);
        }
        Some(_) => {
            let _g = r.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
        None => r.plain_line(text),
    }
}

/// A warning (`warning: TEXT`): a [`message`] when progress is shown, else
/// a log event at warn level (shown unless `-q`).
pub fn warning(text: &str) {
    if mode() == Mode::None {
        tracing::warn!("{text}");
    } else {
        message(&format!("warning: {text}"));
    }
}

/// Run `f` (which writes to stderr) with the live display out of the way:
/// what it prints appears above the bars, which are redrawn after.
pub fn suspend<T>(f: impl FnOnce() -> T) -> T {
    match REPORTER.get() {
        Some(Reporter {
            multi: Some(multi), ..
        }) => multi.suspend(f),
        Some(r) => {
            let _g = r.out.lock().unwrap_or_else(|e| e.into_inner());
            f()
        }
        None => f(),
    }
}

/// The end of the work: the header is left with the final totals (tty), a
/// last summary line printed (plain), the summary thread stopped. Called
/// by the binary before it prints its result; nothing is shown after (a
/// second call does nothing).
pub fn finish() {
    let Some(r) = reporter() else { return };
    r.finished.store(true, Ordering::Relaxed);
    {
        let (flag, cv) = &*r.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
    if let Some(h) = r.ticker.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = h.join();
    }
    match r.mode {
        Mode::Tty => {
            // Every worker line is already gone; the header is replaced by
            // one finished line with the final totals, drawn once.
            if let (Some(multi), Some(header)) = (&r.multi, r.header.get()) {
                header.finish_and_clear();
                let _ = multi.clear();
                let _g = r.out.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "envbuild: {} in {:.1}s",
                    r.totals(),
                    r.start.elapsed().as_secs_f64()
                );
            }
        }
        Mode::Plain => {
            let (done, total) = (
                r.steps_done.load(Ordering::Relaxed),
                r.steps_total.load(Ordering::Relaxed),
            );
            if total > 0 {
                let how = if done == total { "done" } else { "stopped" };
                r.plain_line(&format!("{how}: {}", r.summary()));
            }
        }
        Mode::None => {}
    }
}
