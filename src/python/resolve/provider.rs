//! The `pubgrub` dependency provider: packages, extras, version choice for
//! the target, and a readable explanation of failures.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use pep440_rs::Version;
use pep508_rs::{ExtraName, MarkerEnvironment, Requirement, VerbatimUrl, VersionOrUrl};
use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyProvider, DerivationTree, Derived, External,
    Map, PackageResolutionStatistics, Ranges, ReportFormatter, Reporter, Term,
};

use super::error::{NoWheel, ResolveError};
use super::index::{DistFile, IndexClient, Project, Skip};
use super::metadata::{requires_python_allows, CoreMetadata};
use crate::python::sdist::{self, SdistMetadata};

/// An sdist's static metadata in the form resolution reads a wheel's.
fn sdist_core_metadata(m: &SdistMetadata) -> Result<CoreMetadata, String> {
    use std::str::FromStr;
    Ok(CoreMetadata {
        name: m.name.clone(),
        version: Version::from_str(&m.version)
            .map_err(|e| format!("Version {:?} is not PEP 440: {e}", m.version))?,
        requires_python: m.requires_python.clone(),
        requires_dist: m
            .requires_dist
            .iter()
            .map(|r| {
                crate::python::pep508::parse_requirement::<VerbatimUrl>(r)
                    .map_err(|e| format!("requirement {r:?} is not PEP 508: {e}"))
            })
            .collect::<Result<_, _>>()?,
    })
}

/// A node of the resolution graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Pkg {
    /// The requirements given to [`super::resolve`].
    Root,
    /// A distribution, by normalized name.
    Base(String),
    /// A distribution with one extra (PEP 685-normalized): it depends on
    /// `Base` at the same version and on what the extra adds.
    Extra(String, String),
}

impl Pkg {
    pub fn name(&self) -> Option<&str> {
        match self {
            Pkg::Root => None,
            Pkg::Base(n) | Pkg::Extra(n, _) => Some(n),
        }
    }
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => write!(f, "the requirements"),
            Pkg::Base(n) => write!(f, "{n}"),
            Pkg::Extra(n, e) => write!(f, "{n}[{e}]"),
        }
    }
}

pub(super) type Range = Ranges<Version>;

/// `==1.0`, `>=1.0, <2.0`, or nothing for any version.
pub(super) fn range_text(r: &Range) -> String {
    if let Some(v) = r.as_singleton() {
        format!("=={v}")
    } else if r == &Range::full() {
        String::new()
    } else {
        r.to_string()
    }
}

fn pkg_range(p: &Pkg, r: &Range) -> String {
    format!("{p}{}", range_text(r))
}

/// The version given to the root package.
pub(super) fn root_version() -> Version {
    Version::new([0])
}

#[derive(Default)]
struct State {
    /// Order of discovery, for priorities (breadth first).
    discovered: HashMap<Pkg, usize>,
    /// The wheel chosen for (name, version).
    chosen: HashMap<(String, Version), Arc<DistFile>>,
    /// Versions chosen although no wheel of theirs runs on the target, so
    /// that resolution goes on and every such package is reported at once.
    phantoms: HashMap<(String, Version), NoWheel>,
    /// Packages a requirement names a pre-release of.
    explicit_pre: HashSet<String>,
    /// Dependency names of each (package, version), for the output.
    dependency_names: HashMap<(Pkg, Version), BTreeSet<String>>,
    /// Packages the index does not have.
    not_found: BTreeSet<String>,
    /// `==` requests of versions that do not exist: name → versions.
    missing_pins: BTreeMap<String, BTreeSet<Version>>,
}

pub(super) struct Provider<'a> {
    client: &'a IndexClient,
    env: MarkerEnvironment,
    python: Version,
    root: Vec<Requirement<VerbatimUrl>>,
    /// Whether a version with no wheel for the target may use its sdist.
    sdists: bool,
    /// Versions to choose first where the range allows them (the old
    /// lock's, so that a re-lock moves only what must move).
    preferences: &'a BTreeMap<String, Version>,
    state: RefCell<State>,
}

impl<'a> Provider<'a> {
    pub fn new(
        client: &'a IndexClient,
        env: MarkerEnvironment,
        python: Version,
        root: Vec<Requirement<VerbatimUrl>>,
        sdists: bool,
        preferences: &'a BTreeMap<String, Version>,
    ) -> Self {
        Provider {
            client,
            env,
            python,
            root,
            sdists,
            preferences,
            state: RefCell::new(State::default()),
        }
    }

    pub fn env(&self) -> &MarkerEnvironment {
        &self.env
    }

    /// The constraints a list of requirements puts on other packages, for
    /// the target and the active extras (`None`: the base requirements;
    /// `Some(e)`: those only extra `e` adds). Several requirements on one
    /// package intersect. `parent` is the requiring (name, version): a
    /// package requiring itself (with extras) means its own version.
    fn constraints(
        &self,
        reqs: &[Requirement<VerbatimUrl>],
        extra: Option<&str>,
        parent: Option<(&str, &Version)>,
    ) -> Result<Vec<(Pkg, Range)>, String> {
        let extras: Vec<ExtraName> = match extra {
            Some(e) => vec![ExtraName::new(e.to_owned()).map_err(|e| e.to_string())?],
            None => Vec::new(),
        };
        let mut out: Vec<(Pkg, Range)> = Vec::new();
        let mut add = |p: Pkg, r: Range| match out.iter_mut().find(|(q, _)| *q == p) {
            Some((_, have)) => *have = have.intersection(&r),
            None => out.push((p, r)),
        };
        for req in reqs {
            let applies = if extras.is_empty() {
                req.marker.evaluate(&self.env, &[])
            } else {
                req.marker.evaluate(&self.env, &extras) && !req.marker.evaluate(&self.env, &[])
            };
            if !applies {
                continue;
            }
            let name = req.name.to_string();
            let mut range = match &req.version_or_url {
                None => Range::full(),
                Some(VersionOrUrl::VersionSpecifier(s)) => {
                    if s.iter().any(|s| s.any_prerelease()) {
                        self.state.borrow_mut().explicit_pre.insert(name.clone());
                    }
                    Range::from(s.clone())
                }
                Some(VersionOrUrl::Url(u)) => {
                    return Err(format!(
                        "it requires {name} from a direct URL ({u}), which is not supported"
                    ))
                }
            };
            let own = parent.filter(|(p, _)| *p == name);
            if let Some((_, v)) = own {
                range = Range::singleton(v.clone());
            } else {
                add(Pkg::Base(name.clone()), range.clone());
            }
            for e in &req.extras {
                add(Pkg::Extra(name.clone(), e.to_string()), range.clone());
            }
        }
        Ok(out)
    }

    /// Record newly seen packages (priority order) and start fetching them.
    fn discover(&self, deps: &[(Pkg, Range)]) {
        let mut st = self.state.borrow_mut();
        for (p, range) in deps {
            let n = st.discovered.len();
            if let std::collections::hash_map::Entry::Vacant(v) = st.discovered.entry(p.clone()) {
                v.insert(n);
                if let Some(name) = p.name() {
                    // The old lock's version is the likely one where the
                    // range still holds it.
                    match self.preferences.get(name).filter(|v| range.contains(v)) {
                        Some(v) => self.client.prefetch_in(name, &Range::singleton(v.clone())),
                        None => self.client.prefetch_in(name, range),
                    }
                }
            }
        }
    }

    /// The requirements of the root, as constraints.
    pub fn root_constraints(&self) -> Result<Vec<(Pkg, Range)>, ResolveError> {
        let deps = self
            .constraints(&self.root, None, None)
            .map_err(|message| ResolveError::UnsupportedRequirement {
                requirement: message,
            })?;
        self.discover(&deps);
        Ok(deps)
    }

    fn pick(&self, name: &str, range: &Range) -> Result<Option<Version>, ResolveError> {
        let project = match self.client.project(name) {
            Ok(p) => p,
            Err(ResolveError::NotFound { .. }) => {
                self.state.borrow_mut().not_found.insert(name.to_owned());
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let pinned = range.as_singleton().is_some();
        let allow_pre = pinned
            || self.state.borrow().explicit_pre.contains(name)
            || project.versions.iter().all(|e| e.version.any_prerelease());
        // The preferred version first (when the range holds it), then the
        // newest down.
        let preferred = self.preferences.get(name).filter(|v| range.contains(v));
        let preferred_entry = preferred
            .and_then(|v| project.versions.iter().find(|e| e.version == *v))
            .into_iter();
        let in_range = || {
            project
                .versions
                .iter()
                .rev()
                .filter(|e| range.contains(&e.version))
                .filter(|e| allow_pre || !e.version.any_prerelease())
        };
        for e in preferred_entry.chain(in_range()) {
            let file = match (&e.wheel, &e.yanked_wheel, &e.sdist) {
                (Some(w), _, _) => w,
                (None, Some(y), _) if pinned => y,
                (None, _, Some(s)) if self.sdists && matches!(e.skip, Some(Skip::NoWheel(_))) => s,
                _ => continue,
            };
            self.state
                .borrow_mut()
                .chosen
                .insert((name.to_owned(), e.version.clone()), file.clone());
            return Ok(Some(e.version.clone()));
        }
        // Nothing usable: a version whose only problem is that no wheel
        // fits the target stands in, to be reported with all the others.
        for e in in_range() {
            if let Some(Skip::NoWheel(files)) = &e.skip {
                let nw = NoWheel {
                    package: name.to_owned(),
                    wanted: match range_text(range) {
                        t if t.is_empty() => "any version".to_owned(),
                        t => t,
                    },
                    version: e.version.to_string(),
                    found: summarize_files(files),
                };
                self.state
                    .borrow_mut()
                    .phantoms
                    .insert((name.to_owned(), e.version.clone()), nw);
                return Ok(Some(e.version.clone()));
            }
        }
        if let Some(v) = range.as_singleton() {
            if project.entry(v).is_none() {
                self.state
                    .borrow_mut()
                    .missing_pins
                    .entry(name.to_owned())
                    .or_default()
                    .insert(v.clone());
            }
        }
        Ok(None)
    }

    /// The wheel chosen for `name` `version` (the same rule as [`Self::pick`]).
    pub fn chosen(&self, name: &str, version: &Version) -> Option<Arc<DistFile>> {
        self.state
            .borrow()
            .chosen
            .get(&(name.to_owned(), version.clone()))
            .cloned()
    }

    pub fn phantom(&self, name: &str, version: &Version) -> Option<NoWheel> {
        self.state
            .borrow()
            .phantoms
            .get(&(name.to_owned(), version.clone()))
            .cloned()
    }

    pub fn dependency_names(&self, pkg: &Pkg, version: &Version) -> BTreeSet<String> {
        self.state
            .borrow()
            .dependency_names
            .get(&(pkg.clone(), version.clone()))
            .cloned()
            .unwrap_or_default()
    }

    fn dependencies_of(
        &self,
        name: &str,
        extra: Option<&str>,
        version: &Version,
    ) -> Result<Result<Vec<(Pkg, Range)>, String>, ResolveError> {
        if self.phantom(name, version).is_some() {
            return Ok(Ok(match extra {
                Some(_) => vec![(
                    Pkg::Base(name.to_owned()),
                    Range::singleton(version.clone()),
                )],
                None => Vec::new(),
            }));
        }
        let file = match self.chosen(name, version) {
            Some(f) => f,
            None => {
                // Chosen for the other half (base or extra) of the package.
                let project = self.client.project(name)?;
                match project.entry(version).and_then(|e| {
                    e.wheel
                        .clone()
                        .or_else(|| e.yanked_wheel.clone())
                        .or_else(|| e.sdist.clone().filter(|_| self.sdists))
                }) {
                    Some(f) => f,
                    None => return Ok(Err("it has no wheel for the target".into())),
                }
            }
        };
        let meta = if sdist::is_sdist(&file.filename) {
            match self.client.sdist_metadata(name, &file) {
                Ok(m) => match sdist_core_metadata(&m) {
                    Ok(m) => Arc::new(m),
                    Err(message) => {
                        return Err(ResolveError::Sdist {
                            package: name.to_owned(),
                            message: format!("{}: {message}", file.filename),
                        })
                    }
                },
                // Dynamic or malformed metadata: this version is unusable
                // (the reason shows in the explanation if nothing else fits).
                Err(e @ ResolveError::Sdist { .. }) => return Ok(Err(e.to_string())),
                Err(e) => return Err(e),
            }
        } else {
            match self.client.metadata(name, &file) {
                Ok(m) => m,
                Err(e @ ResolveError::BadMetadata { .. }) => return Ok(Err(e.to_string())),
                Err(e) => return Err(e),
            }
        };
        if &meta.version != version {
            return Ok(Err(format!(
                "the metadata of {} says version {}",
                file.filename, meta.version
            )));
        }
        if let Some(rp) = &meta.requires_python {
            if !requires_python_allows(rp, &self.python) {
                return Ok(Err(format!(
                    "{} requires Python {rp}, the target has {}",
                    file.filename, self.python
                )));
            }
        }
        let mut deps = match self.constraints(&meta.requires_dist, extra, Some((name, version))) {
            Ok(d) => d,
            Err(m) => return Ok(Err(m)),
        };
        if extra.is_some() {
            deps.push((
                Pkg::Base(name.to_owned()),
                Range::singleton(version.clone()),
            ));
        }
        Ok(Ok(deps))
    }

    /// Notes on the packages of a failed resolution: versions skipped and
    /// why, packages not on the index, pins of missing versions.
    pub fn notes(&self, packages: &BTreeSet<String>) -> Vec<String> {
        let st = self.state.borrow();
        let mut notes = Vec::new();
        for name in packages {
            if st.not_found.contains(name) {
                notes.push(format!(
                    "{name} is not on the index {}",
                    self.client.index_display()
                ));
                continue;
            }
            let Ok(project) = self.client.project(name) else {
                continue;
            };
            if let Some(pins) = st.missing_pins.get(name) {
                for v in pins {
                    notes.push(format!(
                        "{name} has no version {v}; nearest: {}",
                        nearest_versions(&project, v).join(", ")
                    ));
                }
            }
            notes.extend(skip_notes(&project, &self.python));
        }
        notes
    }
}

fn short_list(vs: &[&Version]) -> String {
    const SHOWN: usize = 5;
    let mut text: Vec<String> = vs.iter().rev().take(SHOWN).map(|v| v.to_string()).collect();
    text.reverse();
    if vs.len() > SHOWN {
        format!("{} more, …, {}", vs.len() - SHOWN, text.join(", "))
    } else {
        text.join(", ")
    }
}

fn skip_notes(project: &Project, python: &Version) -> Vec<String> {
    let name = &project.name;
    let mut yanked = Vec::new();
    let mut by_python: BTreeMap<&str, Vec<&Version>> = BTreeMap::new();
    let mut no_wheel = Vec::new();
    for e in &project.versions {
        match &e.skip {
            Some(Skip::Yanked(_)) => yanked.push(&e.version),
            Some(Skip::RequiresPython(rp)) => {
                by_python.entry(rp.as_str()).or_default().push(&e.version)
            }
            Some(Skip::NoWheel(_)) => no_wheel.push(&e.version),
            None => {}
        }
    }
    let mut notes = Vec::new();
    if !yanked.is_empty() {
        notes.push(format!(
            "{name} {} {} yanked (used only when pinned with ==)",
            short_list(&yanked),
            if yanked.len() == 1 { "is" } else { "are" }
        ));
    }
    for (rp, vs) in by_python {
        notes.push(format!(
            "{name} {} need{} Python {rp}; the target has {python}",
            short_list(&vs),
            if vs.len() == 1 { "s" } else { "" }
        ));
    }
    if !no_wheel.is_empty() {
        notes.push(format!(
            "{name} {} {} no wheel for the target",
            short_list(&no_wheel),
            if no_wheel.len() == 1 { "has" } else { "have" }
        ));
    }
    if !project.hidden_newer.is_empty() {
        let vs: Vec<&Version> = project.hidden_newer.iter().collect();
        notes.push(format!(
            "{name} {} {} left out by exclude-newer (uploaded later, or no upload time)",
            short_list(&vs),
            if vs.len() == 1 { "is" } else { "are" }
        ));
    }
    notes
}

/// Up to two existing versions on each side of `wanted`.
pub(super) fn nearest_versions(project: &Project, wanted: &Version) -> Vec<String> {
    let mut all: Vec<&Version> = project
        .versions
        .iter()
        .map(|e| &e.version)
        .chain(project.hidden_newer.iter())
        .collect();
    all.sort();
    all.dedup();
    let split = all.partition_point(|v| *v < wanted);
    let lo = split.saturating_sub(2);
    let hi = (split + 2).min(all.len());
    all[lo..hi].iter().map(|v| v.to_string()).collect()
}

/// "only sdists: a.tar.gz" / "wheels for other targets: x.whl, y.whl (+3 more)"
fn summarize_files(files: &[String]) -> String {
    let wheels: Vec<&String> = files.iter().filter(|f| f.ends_with(".whl")).collect();
    let sdists: Vec<&String> = files.iter().filter(|f| !f.ends_with(".whl")).collect();
    let list = |fs: &[&String]| {
        let shown: Vec<&str> = fs.iter().take(3).map(|s| s.as_str()).collect();
        let more = fs.len().saturating_sub(3);
        let mut s = shown.join(", ");
        if more > 0 {
            s.push_str(&format!(" (+{more} more)"));
        }
        s
    };
    match (wheels.is_empty(), sdists.is_empty()) {
        (true, _) => format!("only sdists: {}", list(&sdists)),
        (false, true) => format!("only wheels for other targets: {}", list(&wheels)),
        (false, false) => format!(
            "sdists ({}) and wheels for other targets ({})",
            list(&sdists),
            list(&wheels)
        ),
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Pkg;
    type V = Version;
    type VS = Range;
    type M = String;
    type Priority = (u8, u32, Reverse<usize>);
    type Err = ResolveError;

    fn prioritize(
        &self,
        package: &Pkg,
        range: &Range,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        if *package == Pkg::Root {
            return (2, u32::MAX, Reverse(0));
        }
        let order = self
            .state
            .borrow()
            .discovered
            .get(package)
            .copied()
            .unwrap_or(usize::MAX);
        (
            u8::from(range.as_singleton().is_some()),
            stats.conflict_count(),
            Reverse(order),
        )
    }

    fn choose_version(
        &self,
        package: &Pkg,
        range: &Range,
    ) -> Result<Option<Version>, ResolveError> {
        match package {
            Pkg::Root => Ok(Some(root_version()).filter(|v| range.contains(v))),
            Pkg::Base(name) | Pkg::Extra(name, _) => self.pick(name, range),
        }
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<Dependencies<Pkg, Range, String>, ResolveError> {
        let deps = match package {
            Pkg::Root => Ok(self.root_constraints()?),
            Pkg::Base(name) => self.dependencies_of(name, None, version)?,
            Pkg::Extra(name, extra) => self.dependencies_of(name, Some(extra), version)?,
        };
        match deps {
            Ok(deps) => {
                self.discover(&deps);
                let names: BTreeSet<String> = deps
                    .iter()
                    .filter_map(|(p, _)| p.name())
                    .filter(|n| Some(*n) != package.name())
                    .map(str::to_owned)
                    .collect();
                self.state
                    .borrow_mut()
                    .dependency_names
                    .insert((package.clone(), version.clone()), names);
                Ok(Dependencies::Available(
                    deps.into_iter().collect::<Map<_, _>>(),
                ))
            }
            Err(reason) => Ok(Dependencies::Unavailable(reason)),
        }
    }
}

/// Text of a failed resolution: pubgrub's derivation tree in words.
pub(super) fn explain(tree: &DerivationTree<Pkg, Range, String>) -> String {
    let mut tree = tree.clone();
    tree.collapse_no_versions();
    DefaultStringReporter::report_with_formatter(&tree, &Formatter)
}

/// Every package named in a derivation tree.
pub(super) fn tree_packages(tree: &DerivationTree<Pkg, Range, String>) -> BTreeSet<String> {
    tree.packages()
        .into_iter()
        .filter_map(|p| p.name().map(str::to_owned))
        .collect()
}

/// Words for pubgrub's explanation, with the root spoken of as "the
/// requirements" and ranges in PEP 440 style.
struct Formatter;

type Ext = External<Pkg, Range, String>;
type Terms = Map<Pkg, Term<Range>>;

impl Formatter {
    fn external(&self, e: &Ext) -> String {
        match e {
            External::NotRoot(p, v) => format!("we are solving the dependencies of {p} {v}"),
            External::NoVersions(p, r) => {
                if r == &Range::full() {
                    format!("there is no usable version of {p}")
                } else {
                    format!("there is no usable version of {}", pkg_range(p, r))
                }
            }
            External::Custom(p, r, reason) => {
                format!("{} is unusable: {reason}", pkg_range(p, r))
            }
            External::FromDependencyOf(p, rp, d, rd) => {
                if *p == Pkg::Root {
                    format!("the requirements need {}", pkg_range(d, rd))
                } else {
                    format!("{} depends on {}", pkg_range(p, rp), pkg_range(d, rd))
                }
            }
        }
    }

    fn terms(&self, terms: &Terms) -> String {
        let v: Vec<(&Pkg, &Term<Range>)> = terms.iter().collect();
        match v.as_slice() {
            [] => "version solving failed".into(),
            [(Pkg::Root, Term::Positive(_))] => "the requirements cannot be satisfied".into(),
            [(p, Term::Positive(r))] => format!("{} cannot be used", pkg_range(p, r)),
            [(p, Term::Negative(r))] => format!("{} is required", pkg_range(p, r)),
            [(p1, Term::Positive(r1)), (p2, Term::Negative(r2))]
            | [(p2, Term::Negative(r2)), (p1, Term::Positive(r1))] => self.external(
                &External::FromDependencyOf((*p1).clone(), r1.clone(), (*p2).clone(), r2.clone()),
            ),
            slice => {
                let parts: Vec<String> = slice
                    .iter()
                    .map(|(p, t)| match t {
                        Term::Positive(r) => pkg_range(p, r),
                        Term::Negative(r) => format!("not {}", pkg_range(p, r)),
                    })
                    .collect();
                parts.join(", ") + " are incompatible"
            }
        }
    }
}

impl ReportFormatter<Pkg, Range, String> for Formatter {
    type Output = String;

    fn format_external(&self, external: &Ext) -> String {
        self.external(external)
    }

    fn format_terms(&self, terms: &Terms) -> String {
        self.terms(terms)
    }

    fn explain_both_external(&self, e1: &Ext, e2: &Ext, current: &Terms) -> String {
        format!(
            "Because {} and {}, {}.",
            self.external(e1),
            self.external(e2),
            self.terms(current)
        )
    }

    fn explain_both_ref(
        &self,
        id1: usize,
        d1: &Derived<Pkg, Range, String>,
        id2: usize,
        d2: &Derived<Pkg, Range, String>,
        current: &Terms,
    ) -> String {
        format!(
            "Because {} ({id1}) and {} ({id2}), {}.",
            self.terms(&d1.terms),
            self.terms(&d2.terms),
            self.terms(current)
        )
    }

    fn explain_ref_and_external(
        &self,
        id: usize,
        d: &Derived<Pkg, Range, String>,
        e: &Ext,
        current: &Terms,
    ) -> String {
        format!(
            "Because {} ({id}) and {}, {}.",
            self.terms(&d.terms),
            self.external(e),
            self.terms(current)
        )
    }

    fn and_explain_external(&self, e: &Ext, current: &Terms) -> String {
        format!("And because {}, {}.", self.external(e), self.terms(current))
    }

    fn and_explain_ref(
        &self,
        id: usize,
        d: &Derived<Pkg, Range, String>,
        current: &Terms,
    ) -> String {
        format!(
            "And because {} ({id}), {}.",
            self.terms(&d.terms),
            self.terms(current)
        )
    }

    fn and_explain_prior_and_external(&self, prior: &Ext, e: &Ext, current: &Terms) -> String {
        format!(
            "And because {} and {}, {}.",
            self.external(prior),
            self.external(e),
            self.terms(current)
        )
    }
}
