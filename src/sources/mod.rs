//! Sources: where a spec's inputs come from, one module per kind, each a
//! [`Source`] with two jobs:
//!
//! - lock time ([`Source::pin`]): pin its inputs into the new [`Lock`],
//!   reusing the old lock's pins when the spec asks for the same thing
//!   (no network then), else resolving them (an archive, an index, a hub);
//! - plan time ([`Source::plan`]): the [`Plan`] inputs (fixed-output
//!   fetches, local paths) and build steps that materialize those pins.
//!
//! | module | spec | lock section |
//! |---|---|---|
//! | [`base_image`] | `[base] image` | `base-image` |
//! | [`debian`] | `[base] debian`, `[shell] packages` | `debian`, `shell-debian` |
//! | [`python`] | `[python] requirements` / `lock`, `[[wheels]]` | `python`, `wheels` |
//! | [`models`] | `[models.NAME]` | `models` |
//! | [`files`] | `[[files]]` | `files` |
//!
//! [`pin`] and [`plan`] run them in rootfs order; a new kind of source is
//! one new module and one line in [`sources`].

pub mod base_image;
pub mod debian;
mod error;
pub mod files;
pub mod models;
pub mod python;

use envbuild_store::Store;

pub(crate) use error::io_err;
pub use error::SourceError;

use crate::fetch::FetchOptions;
use crate::lock::Lock;
use crate::oci::{self, ImageConfig};
use crate::plan::{ImagePlan, Plan, StepId};
use crate::python::resolve::Timestamp;
use crate::spec::{self, Spec};

/// The PATH an image gets unless the spec sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What pinning may use.
pub struct PinContext<'a> {
    /// For local hashes (through its hash cache) and the few files that
    /// must be downloaded to be pinned (a URL wheel's size, a hub file
    /// whose sha256 the hub does not publish).
    pub store: &'a mut Store,
    pub spec: &'a Spec,
    /// The lock being replaced: its pins are kept where the spec's request
    /// did not change.
    pub old: Option<&'a Lock>,
    /// Resolve as if the index held nothing uploaded after this instant
    /// (else the instant the old lock was resolved with, if any).
    pub exclude_newer: Option<Timestamp>,
    /// Which of the old lock's pins a resolution may move.
    pub upgrade: Upgrade,
    pub fetch: FetchOptions,
    /// Where an index said pinned files are (sha256 → URL), learnt while
    /// resolving: realize fetches from there before asking the index.
    pub urls: std::collections::BTreeMap<String, String>,
    /// The Python index work begun while the base resolves ([`pin`] sets
    /// it; the Python source takes it).
    pub python_warmup: Option<StartedWarmup>,
}

/// The thread starting a [`crate::python::resolve::Warmup`] (it first
/// finds the index); `None` from it when it could not start.
pub type StartedWarmup = std::thread::JoinHandle<Option<crate::python::resolve::Warmup>>;

/// What a re-lock may move. A resolution prefers the old lock's version of
/// every package the requirements still allow, so a changed requirement
/// moves that package and what its new constraints force, nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Upgrade {
    /// Keep every pin that still satisfies the requirements (the default).
    #[default]
    Nothing,
    /// `--upgrade`: resolve afresh, as of now (the old lock's
    /// `exclude-newer` is not reused).
    All,
    /// `--upgrade-package NAME`: these (normalized names) move to the
    /// newest versions allowed; the rest keep their pins.
    Packages(std::collections::BTreeSet<String>),
}

/// What planning may use.
pub struct PlanContext<'a> {
    pub spec: &'a Spec,
    /// The base's components so far (Debian packages, base files): the
    /// build closure of an sdist.
    pub base: Vec<StepId>,
}

/// One kind of input.
pub trait Source {
    /// Pin this source's inputs into `lock`.
    fn pin(&self, cx: &mut PinContext, lock: &mut Lock) -> Result<(), SourceError>;
    /// Add the inputs and steps that materialize `lock`'s pins of this
    /// source; components go to `plan.components` in rootfs order.
    fn plan(&self, cx: &mut PlanContext, lock: &Lock, plan: &mut Plan) -> Result<(), SourceError>;
    /// Whether pinning reads only local files (pinned first).
    fn is_local(&self) -> bool {
        false
    }
}

/// Every source of `spec`, in rootfs order: the base's (Debian), then the
/// rest; the base files go between them (see [`plan`]).
#[allow(clippy::type_complexity)]
fn sources(spec: &Spec) -> (Vec<Box<dyn Source + '_>>, Vec<Box<dyn Source + '_>>) {
    let mut base: Vec<Box<dyn Source>> = Vec::new();
    if let Some(b) = &spec.base_image {
        base.push(Box::new(base_image::BaseImageSource(b)));
    }
    if let Some(b) = &spec.debian {
        base.push(Box::new(debian::DebianSource::base(b)));
        if !spec.shell.packages.is_empty() {
            base.push(Box::new(debian::DebianSource::shell(
                b,
                &spec.shell.packages,
            )));
        }
    }
    let rest: Vec<Box<dyn Source>> = vec![
        Box::new(python::PythonSource),
        Box::new(models::ModelsSource),
        Box::new(files::FilesSource),
    ];
    (base, rest)
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Lock time: pin every input of `cx.spec`.
pub fn pin(cx: &mut PinContext) -> Result<Lock, SourceError> {
    let epoch = cx
        .spec
        .source_date_epoch
        .or(cx.old.map(|l| l.source_date_epoch))
        .unwrap_or_else(now_epoch);
    let mut lock = Lock {
        source_date_epoch: epoch,
        ..Lock::default()
    };
    // Local files first: they are cheap, and a later failure (a download)
    // leaves them pinned in the store.
    let (base, _) = sources(cx.spec);
    // What the Python resolution can fetch without the base's glibc runs
    // while the base resolves.
    let python_warmup = python::warm_up(cx);
    for s in &base {
        s.pin(cx, &mut lock)?;
    }
    // The rest see the spec as the base completes it (its interpreter).
    let effective = effective_spec(cx.spec, &lock).into_owned();
    let mut rest_cx = PinContext {
        store: &mut *cx.store,
        spec: &effective,
        old: cx.old,
        exclude_newer: cx.exclude_newer,
        upgrade: cx.upgrade.clone(),
        fetch: cx.fetch.clone(),
        urls: std::mem::take(&mut cx.urls),
        python_warmup,
    };
    let (_, rest) = sources(&effective);
    let (local, remote): (Vec<_>, Vec<_>) = rest.iter().partition(|s| s.is_local());
    let result = local
        .into_iter()
        .chain(remote)
        .try_for_each(|s| s.pin(&mut rest_cx, &mut lock));
    cx.urls = std::mem::take(&mut rest_cx.urls);
    result?;
    Ok(lock.normalized())
}

/// `spec` with its `[python]` layout completed from the base image's
/// interpreter and glibc (the lock's `base-image.python`) where the spec
/// does not name them: the version of the base's `python3.X`, its
/// site-packages (`/usr/local/lib/python3.X/site-packages` beside a
/// `/usr/local/bin` interpreter, Debian's `/usr/local/lib/python3.X/dist-packages`
/// beside `/usr/bin`), scripts in `/usr/local/bin`, that interpreter as the
/// shebang, and the base's glibc.
pub fn effective_spec<'s>(spec: &'s Spec, lock: &Lock) -> std::borrow::Cow<'s, Spec> {
    let Some(p) = lock.base_image.as_ref().and_then(|b| b.python.as_ref()) else {
        return std::borrow::Cow::Borrowed(spec);
    };
    let mut s = spec.clone();
    let l = &mut s.python;
    if let Some(interp) = &p.interpreter {
        let minor: Option<u32> = interp
            .rsplit_once("/python3.")
            .and_then(|(_, m)| m.parse().ok());
        if let (Some(m), false) = (minor, l.named.version) {
            l.version = (3, m);
        }
        let m = l.version.1;
        if !l.named.site_packages {
            l.site_packages = if interp.starts_with("/usr/local/") {
                format!("/usr/local/lib/python3.{m}/site-packages")
            } else {
                format!("/usr/local/lib/python3.{m}/dist-packages")
            };
        }
        if !l.named.scripts {
            l.scripts = "/usr/local/bin".into();
        }
        if !l.named.shebang {
            l.shebang = interp.clone();
        }
    }
    if l.glibc.is_none() {
        l.glibc = p.glibc.as_deref().and_then(|g| {
            let (a, b) = g.split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        });
    }
    std::borrow::Cow::Owned(s)
}

/// Plan time: the graph that materializes `lock` for `spec`. No I/O.
pub fn plan(spec: &Spec, lock: &Lock) -> Result<Plan, SourceError> {
    let effective = effective_spec(spec, lock);
    let spec: &Spec = &effective;
    let mut plan = Plan::new(lock.source_date_epoch, image_plan(spec));
    let mut cx = PlanContext {
        spec,
        base: Vec::new(),
    };
    let (base, rest) = sources(spec);
    for s in &base {
        s.plan(&mut cx, lock, &mut plan)?;
    }
    let base_view = plan.base_image.as_ref().map(|b| b.step);
    files::plan_base_files(spec, &mut plan, base_view);
    cx.base = plan.components.clone();
    // After the base is fixed: the wheels' bytecode closure stays the
    // base's own components, which this step also runs in.
    debian::plan_bytecode(spec, lock, &mut plan, &cx.base);
    for s in &rest {
        s.plan(&mut cx, lock, &mut plan)?;
    }
    Ok(plan)
}

/// The target's glibc: the spec's, else the base's libc6 (from its .deb
/// file names), else 2.17 (manylinux2014).
pub fn glibc_of<'a>(spec: &Spec, deb_files: impl Iterator<Item = &'a str>) -> (u32, u32) {
    if let Some(g) = spec.python.glibc {
        return g;
    }
    deb_files
        .filter_map(|f| f.rsplit('/').next()?.strip_prefix("libc6_"))
        .filter_map(|v| {
            let (maj, rest) = v.split_once('.')?;
            let min: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            Some((maj.parse().ok()?, min.parse().ok()?))
        })
        .next()
        .unwrap_or((2, 17))
}

pub fn compression(c: &spec::Compression) -> oci::Compression {
    match c {
        spec::Compression::Gzip(level) => oci::Compression::Gzip { level: *level },
        spec::Compression::Zstd(level) => oci::Compression::Zstd { level: *level },
        spec::Compression::None => oci::Compression::None,
    }
}

/// The image settings of `spec`.
fn image_plan(spec: &Spec) -> ImagePlan {
    let img = &spec.image;
    let mut env = Vec::new();
    // On a base image, PATH comes from the base unless the spec sets it
    // (see `ImageConfig::over_base`).
    if !img.env.contains_key("PATH") && spec.base_image.is_none() {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.extend(img.env.iter().map(|(k, v)| format!("{k}={v}")));
    ImagePlan {
        config: ImageConfig {
            user: img.user.as_ref().map(|u| u.name.clone()),
            env,
            entrypoint: img.entrypoint.clone(),
            cmd: img.cmd.clone(),
            working_dir: img.workdir.clone(),
            exposed_ports: img.ports.iter().cloned().collect(),
            labels: img.labels.clone(),
            volumes: img.volumes.iter().cloned().collect(),
            ..ImageConfig::default()
        },
        reference: img.reference.clone(),
        compression: compression(&img.compression),
    }
}
