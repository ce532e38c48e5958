//! A Dockerfile translated into a spec.
//!
//! The final stage and the stages it is built `FROM` are read in order, as
//! one image. What each instruction becomes:
//!
//! | instruction | spec |
//! |---|---|
//! | `FROM debian:SUITE…`, `FROM python:3.X…` | `[base] debian` (suite; `python3.X` for a python image) |
//! | `FROM` another image (e.g. a CUDA base) | `[base] debian` of the default suite; reported: its vendor libraries come from wheels, or pin it with `[base] image` |
//! | `RUN apt-get install …` | `[base] debian` packages (`apt-get update`, list clean-ups absorbed) |
//! | `RUN groupadd`/`useradd`, then `USER` | `[image] user` |
//! | `RUN pip install PKG… / -r FILE` | `[python] requirements` (`FILE` read from the context through the COPY that placed it) |
//! | `RUN python -c "…snapshot_download('ID', cache_dir=…)"` | `[models.NAME]` |
//! | `RUN chmod`/`chown` of a copied path, `mkdir -p` of a placed path | that `[[files]]` entry's mode/owner; absorbed |
//! | `COPY`/`ADD` of context paths | `[[files]]` (`--chown`, `--chmod` kept) |
//! | `WORKDIR`, `ENV`, `LABEL`, `EXPOSE`, `VOLUME`, `CMD`, `ENTRYPOINT` | `[image]` keys |
//! | any other `RUN` command, `ARG`, `COPY --from`, `HEALTHCHECK`, … | reported, not translated |
//!
//! A copied script whose first line asks for `/bin/bash` or `/bin/sh`
//! adds `bash` or `dash` to the packages (a base image would have had
//! them); a CMD under `/root` run by another user is reported, since
//! `/root` is mode 0700.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::dockerfile::{self, Args, Instruction};
use super::{
    relative_to, spec_name, DebianDraft, FileDraft, InitError, InitOptions, ModelDraft, Note,
    Outcome, Port, PythonDraft, SpecDraft, Translation, UserDraft, DEFAULT_SUITE,
};

/// Translate the Dockerfile at `path`; its directory is the build context.
pub fn from_dockerfile(path: &Path, opts: &InitOptions) -> Result<Translation, InitError> {
    let text = crate::io::read_regular_to_string(path).map_err(|source| InitError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let abs = std::path::absolute(path).map_err(|source| InitError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let context = abs.parent().unwrap_or(Path::new("/"));
    translate(path, &text, context, opts)
}

/// Translate Dockerfile `text` (read from `path`, named in errors) whose
/// build context is `context`.
pub fn translate(
    path: &Path,
    text: &str,
    context: &Path,
    opts: &InitOptions,
) -> Result<Translation, InitError> {
    let instructions = dockerfile::parse(text).map_err(|source| InitError::Dockerfile {
        path: path.to_path_buf(),
        source,
    })?;
    let context = context.to_path_buf();
    let name = spec_name(path, opts)?;
    let mut t = Translator::new(
        name,
        context,
        std::path::absolute(&opts.spec_dir).unwrap_or_default(),
    );
    let stages = stages(&instructions);
    if stages.is_empty() {
        return Err(InitError::NoFrom {
            path: path.to_path_buf(),
        });
    }
    for ins in instructions.iter().take_while(|i| i.keyword != "FROM") {
        t.not(ins, "before the first FROM (only ARG belongs there): not translated; write its value into the spec");
    }
    let chain = chain(&stages);
    for (i, stage) in stages.iter().enumerate() {
        if !chain.contains(&i) {
            t.note(
                Some(stage.from.line),
                stage.from.to_string(),
                Outcome::NotTranslated,
                "a stage the final stage is not built FROM: not translated (the image holds only the final stage's chain)".into(),
            );
        }
    }
    for &i in &chain {
        let stage = &stages[i];
        t.from(stage, i == chain[0], &stages);
        for ins in &stage.body {
            t.instruction(ins);
        }
    }
    Ok(t.finish())
}

/// One `FROM` and the instructions up to the next.
struct Stage<'a> {
    from: &'a Instruction,
    image: String,
    alias: Option<String>,
    body: Vec<&'a Instruction>,
}

fn stages(instructions: &[Instruction]) -> Vec<Stage<'_>> {
    let mut out: Vec<Stage> = Vec::new();
    for ins in instructions {
        if ins.keyword == "FROM" {
            let text = ins.args.text();
            let words: Vec<&str> = text.split_whitespace().collect();
            let image = words.first().copied().unwrap_or("").to_string();
            let alias = match words.as_slice() {
                [_, as_, name, ..] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            out.push(Stage {
                from: ins,
                image,
                alias,
                body: Vec::new(),
            });
        } else if let Some(last) = out.last_mut() {
            last.body.push(ins);
        }
    }
    out
}

/// The stages the final stage is built from, root first.
fn chain(stages: &[Stage]) -> Vec<usize> {
    let mut chain = vec![stages.len() - 1];
    loop {
        let cur = *chain.last().expect("non-empty");
        let parent = stages[..cur].iter().rposition(|s| {
            s.alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&stages[cur].image))
        });
        match parent {
            Some(p) => chain.push(p),
            None => break,
        }
    }
    chain.reverse();
    chain
}

/// A file or directory a COPY placed.
struct Copied {
    /// In the build context.
    src: PathBuf,
    /// In the image.
    dst: String,
    /// Index into the draft's files.
    file: usize,
}

/// A user a `useradd`/`adduser` line made: its `-u`, its `-g` (a gid or a
/// group name) and its `-d`, where given.
#[derive(Clone)]
struct AddedUser {
    uid: Option<u32>,
    group: Option<String>,
    home: Option<String>,
}

struct Translator {
    draft: SpecDraft,
    notes: Vec<Note>,
    context: PathBuf,
    spec_dir: PathBuf,
    workdir: String,
    user: Option<String>,
    /// `useradd` seen: name → what it said of the user.
    users: BTreeMap<String, AddedUser>,
    /// `groupadd` seen: name → gid.
    groups: BTreeMap<String, u32>,
    copied: Vec<Copied>,
    /// Image paths `pip install -r` consumed (their [[files]] are dropped).
    consumed: Vec<String>,
    /// `mkdir -p` directories, judged at the end.
    mkdirs: Vec<(usize, String)>,
    python_version: Option<String>,
    stage_names: Vec<String>,
}

impl Translator {
    fn new(name: String, context: PathBuf, spec_dir: PathBuf) -> Self {
        Translator {
            draft: SpecDraft {
                name,
                ..SpecDraft::default()
            },
            notes: Vec::new(),
            context,
            spec_dir,
            workdir: "/".into(),
            user: None,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            copied: Vec::new(),
            consumed: Vec::new(),
            mkdirs: Vec::new(),
            python_version: None,
            stage_names: Vec::new(),
        }
    }

    fn note(&mut self, line: Option<usize>, input: String, outcome: Outcome, detail: String) {
        self.notes.push(Note {
            line,
            input,
            outcome,
            detail,
        });
    }

    fn ok(&mut self, ins: &Instruction, detail: impl Into<String>) {
        self.note(
            Some(ins.line),
            ins.to_string(),
            Outcome::Translated,
            detail.into(),
        );
    }

    fn check(&mut self, ins: &Instruction, detail: impl Into<String>) {
        self.note(
            Some(ins.line),
            ins.to_string(),
            Outcome::Check,
            detail.into(),
        );
    }

    fn not(&mut self, ins: &Instruction, detail: impl Into<String>) {
        self.note(
            Some(ins.line),
            ins.to_string(),
            Outcome::NotTranslated,
            detail.into(),
        );
    }

    fn debian(&mut self) -> &mut DebianDraft {
        self.draft.debian.get_or_insert_with(|| DebianDraft {
            suite: DEFAULT_SUITE.into(),
            packages: Vec::new(),
        })
    }

    fn from(&mut self, stage: &Stage, root: bool, stages: &[Stage]) {
        let ins = stage.from;
        if let Some(a) = &stage.alias {
            self.stage_names.push(a.clone());
        }
        if !root {
            let parent = stages
                .iter()
                .find(|s| {
                    s.alias
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(&stage.image))
                })
                .and_then(|s| s.alias.clone())
                .unwrap_or_default();
            self.ok(ins, format!("continues stage {parent:?}: one image"));
            return;
        }
        if ins
            .flags
            .iter()
            .any(|(n, v)| n == "platform" && v != "linux/amd64")
        {
            self.check(ins, "--platform: the spec's system is x86_64-linux");
        }
        let image = stage.image.as_str();
        let (repo, tag) = split_image(image);
        let short = repo.rsplit('/').next().unwrap_or(repo);
        let official = !repo.contains('/')
            || repo.starts_with("library/")
            || repo.starts_with("docker.io/library/");
        if image == "scratch" {
            self.ok(ins, "an empty base: no [base] section");
        } else if official && short == "debian" {
            let suite = suite_of(tag);
            let detail = match &suite {
                Some(s) => format!("[base] debian, suite {s:?}"),
                None => format!(
                    "[base] debian, suite {DEFAULT_SUITE:?} (the tag {tag:?} names no suite)"
                ),
            };
            self.debian().suite = suite.unwrap_or_else(|| DEFAULT_SUITE.into());
            if self
                .draft
                .debian
                .as_ref()
                .is_some_and(|d| d.suite == DEFAULT_SUITE)
                && detail.contains("names no suite")
            {
                self.check(ins, detail);
            } else {
                self.ok(ins, detail);
            }
        } else if official && short == "python" {
            let version = tag
                .split('-')
                .next()
                .filter(|v| v.starts_with("3.") && v.split('.').count() >= 2)
                .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."));
            let suite = suite_of(tag).unwrap_or_else(|| DEFAULT_SUITE.into());
            let version = version.unwrap_or_else(|| default_python(&suite).to_string());
            self.debian().suite = suite.clone();
            self.debian().add(&format!("python{version}"));
            self.python_version = Some(version.clone());
            self.check(
                ins,
                format!("[base] debian (suite {suite:?}) with python{version}: Debian's interpreter at /usr/bin, not the python image's build in /usr/local"),
            );
        } else {
            self.debian();
            self.draft.base_comment = vec![
                format!("Translated from `FROM {image}`: that image is not used. Its apt packages"),
                format!("are pinned from Debian {DEFAULT_SUITE} below; vendor libraries (CUDA) come from"),
                "wheels (torch's nvidia-*-cu12 dependencies). To build on the image itself,".into(),
                format!("use `[base] image = \"{image}\"` instead: envbuild runs no apt on an"),
                "image base, so the packages must be in it (specs/ofa-ve-cuda.toml shows the route).".into(),
            ];
            self.check(
                ins,
                format!("a vendor base image: not used; its apt packages go to [base] debian (suite {DEFAULT_SUITE:?}) and its libraries must come from wheels, or pin it with `[base] image` (the spec's [base] comment says how)"),
            );
        }
    }

    fn instruction(&mut self, ins: &Instruction) {
        match ins.keyword.as_str() {
            "RUN" => self.run(ins),
            "COPY" | "ADD" => self.copy(ins),
            "USER" => self.user_instruction(ins),
            "WORKDIR" => {
                let dir = self.image_path(ins.args.text().trim());
                self.workdir = dir.clone();
                self.draft.image.workdir = Some(dir.clone());
                self.ok(ins, format!("[image] workdir = {dir:?}"));
            }
            "ENV" => match dockerfile::key_values(&ins.args.text()) {
                Ok(pairs) => {
                    let refers = pairs.iter().any(|(_, v)| v.contains('$'));
                    let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
                    self.draft.image.env.extend(pairs);
                    if refers {
                        self.check(ins, format!("[image] env {}: kept literally (a `$` reference is not expanded)", keys.join(", ")));
                    } else {
                        self.ok(ins, format!("[image] env {}", keys.join(", ")));
                    }
                }
                Err(e) => self.not(ins, format!("cannot read it as KEY=VALUE pairs: {e}")),
            },
            "LABEL" => match dockerfile::key_values(&ins.args.text()) {
                Ok(pairs) => {
                    let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
                    self.draft.image.labels.extend(pairs);
                    self.ok(ins, format!("[image] labels {}", keys.join(", ")));
                }
                Err(e) => self.not(ins, format!("cannot read it as KEY=VALUE pairs: {e}")),
            },
            "EXPOSE" => {
                let mut bad = Vec::new();
                for word in ins.args.text().split_whitespace() {
                    let (num, proto) = word.split_once('/').unwrap_or((word, "tcp"));
                    match num.parse::<u16>() {
                        Ok(n) if proto.eq_ignore_ascii_case("tcp") => self.draft.image.ports.push(Port::Tcp(n)),
                        Ok(n) => self.draft.image.ports.push(Port::Other(format!("{n}/{}", proto.to_ascii_lowercase()))),
                        Err(_) => bad.push(word.to_string()),
                    }
                }
                if bad.is_empty() {
                    self.ok(ins, "[image] ports");
                } else {
                    self.not(ins, format!("{} is not a port number (a `$` reference is not expanded)", bad.join(", ")));
                }
            }
            "VOLUME" => {
                let vols = match &ins.args {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => s.split_whitespace().map(str::to_string).collect(),
                };
                self.draft.image.volumes.extend(vols);
                self.ok(ins, "[image] volumes");
            }
            "CMD" | "ENTRYPOINT" => {
                let argv = match &ins.args {
                    Args::Exec(v) => {
                        self.ok(ins, format!("[image] {}", ins.keyword.to_ascii_lowercase()));
                        v.clone()
                    }
                    Args::Shell(s) => {
                        let key = ins.keyword.to_ascii_lowercase();
                        match self.draft.debian.as_mut().map(|d| d.add("dash")) {
                            Some(added) => self.ok(
                                ins,
                                format!(
                                    "[image] {key} = [\"/bin/sh\", \"-c\", …] (the shell form){}",
                                    if added { "; added dash for /bin/sh" } else { "" }
                                ),
                            ),
                            None => self.check(
                                ins,
                                format!("[image] {key} = [\"/bin/sh\", \"-c\", …] (the shell form), but the base is empty: nothing provides /bin/sh"),
                            ),
                        }
                        vec!["/bin/sh".into(), "-c".into(), s.clone()]
                    }
                };
                if ins.keyword == "CMD" {
                    self.draft.image.cmd = Some(argv);
                } else {
                    self.draft.image.entrypoint = Some(argv);
                    // As in Docker: an ENTRYPOINT resets an inherited CMD.
                }
            }
            "ARG" => self.not(ins, "build arguments are not translated: write the value into the spec"),
            "HEALTHCHECK" => self.not(ins, "no health check in an OCI image config: put the probe in a [[checks]] entry (`envbuild check`)"),
            "SHELL" => self.not(ins, "envbuild runs no shell at build time"),
            "STOPSIGNAL" | "ONBUILD" | "MAINTAINER" => self.not(ins, "no spec key for it"),
            _ => self.not(ins, "not a Dockerfile instruction envbuild knows"),
        }
    }

    /// An image path from a Dockerfile argument: relative to the working
    /// directory, `.`/`..` resolved, no trailing `/`.
    fn image_path(&self, p: &str) -> String {
        let joined = if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{}/{p}", self.workdir)
        };
        let mut parts: Vec<&str> = Vec::new();
        for seg in joined.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        format!("/{}", parts.join("/"))
    }

    fn user_instruction(&mut self, ins: &Instruction) {
        let text = ins.args.text();
        let name = text.trim().split(':').next().unwrap_or("").to_string();
        if name == "root" || name == "0" {
            self.user = None;
            self.draft.image.user = None;
            self.ok(ins, "root: no [image] user");
            return;
        }
        self.user = Some(name.clone());
        let known = self.users.get(&name).cloned();
        let (uid, gid, home) = match known {
            Some(AddedUser { uid, group, home }) => {
                let uid = uid.unwrap_or(1000);
                let gid = group
                    .as_deref()
                    .and_then(|g| g.parse().ok().or_else(|| self.groups.get(g).copied()))
                    .or_else(|| self.groups.get(&name).copied())
                    .unwrap_or(uid);
                (uid, gid, home)
            }
            None => match name.parse::<u32>() {
                Ok(uid) => {
                    self.check(
                        ins,
                        format!("a numeric user: [image] user named \"user{uid}\""),
                    );
                    self.set_user(format!("user{uid}"), uid, uid, None);
                    return;
                }
                Err(_) => {
                    self.check(
                        ins,
                        format!(
                            "{name:?} was not made by a useradd here: uid and gid 1000 assumed"
                        ),
                    );
                    self.set_user(name, 1000, 1000, None);
                    return;
                }
            },
        };
        self.ok(ins, format!("[image] user {name} (uid {uid}, gid {gid})"));
        self.set_user(name, uid, gid, home);
    }

    fn set_user(&mut self, name: String, uid: u32, gid: u32, home: Option<String>) {
        let home = home.filter(|h| *h != format!("/home/{name}"));
        self.draft.image.user = Some(UserDraft {
            name,
            uid,
            gid,
            home,
        });
    }

    fn run(&mut self, ins: &Instruction) {
        if !ins.flags.is_empty() {
            self.check(
                ins,
                "RUN flags (--mount, --network) do not apply: nothing runs at build time",
            );
        }
        let text = match &ins.args {
            Args::Exec(v) => {
                shlex::try_join(v.iter().map(String::as_str)).unwrap_or_else(|_| v.join(" "))
            }
            Args::Shell(s) => s.clone(),
        };
        let Some(words) = shlex::split(&text) else {
            self.not(ins, "unbalanced quotes: cannot read its commands");
            return;
        };
        for command in split_commands(&words) {
            self.command(ins, &command);
        }
    }

    /// One command of a RUN.
    fn command(&mut self, ins: &Instruction, words: &[String]) {
        let line = Some(ins.line);
        let shown =
            shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "));
        let shown = shorten(&shown);
        // `sudo`, `env`, `VAR=value` prefixes.
        let mut w: &[String] = words;
        while let Some(first) = w.first() {
            if first == "sudo" || first == "env" || (first.contains('=') && !first.starts_with('-'))
            {
                w = &w[1..];
            } else {
                break;
            }
        }
        let args: Vec<&str> = w.iter().map(String::as_str).collect();
        let ok =
            |t: &mut Self, detail: String| t.note(line, shown.clone(), Outcome::Translated, detail);
        match args.as_slice() {
            [] => {}
            ["apt-get" | "apt", "update", ..] => ok(self, "not needed: the lock pins the Debian index".into()),
            ["apt-get" | "apt", "clean" | "autoclean" | "autoremove", ..] => ok(self, "not needed: nothing is left behind".into()),
            ["rm", rest @ ..] if rest.iter().all(|a| a.starts_with('-') || is_cache_path(a)) => {
                ok(self, "not needed: no package lists or caches are left in the image".into())
            }
            ["apt-get" | "apt", "install", rest @ ..] => {
                let mut added = Vec::new();
                let mut pinned = Vec::new();
                for a in rest.iter().filter(|a| !a.starts_with('-')) {
                    let (pkg, version) = a.split_once('=').unwrap_or((a, ""));
                    if !version.is_empty() {
                        pinned.push(a.to_string());
                    }
                    self.debian().add(pkg);
                    added.push(pkg.to_string());
                }
                let mut detail = format!("[base] debian packages {}", added.join(", "));
                if !pinned.is_empty() {
                    detail.push_str(&format!("; version pins {} dropped: the lock pins each .deb", pinned.join(", ")));
                    self.note(line, shown.clone(), Outcome::Check, detail);
                } else {
                    ok(self, detail);
                }
            }
            ["groupadd" | "addgroup", rest @ ..] => {
                let (opts, name) = options(rest, &["-g", "--gid"]);
                match name {
                    Some(name) => {
                        if let Some(gid) = opts.get("-g").or(opts.get("--gid")).and_then(|g| g.parse().ok()) {
                            self.groups.insert(name.clone(), gid);
                        }
                        ok(self, format!("group {name}: [image] user's gid"))
                    }
                    None => self.note(line, shown.clone(), Outcome::NotTranslated, "no group name".into()),
                }
            }
            ["useradd" | "adduser", rest @ ..] => {
                let (opts, name) = options(rest, &["-u", "--uid", "-g", "--gid", "--ingroup", "-d", "--home", "--home-dir", "-s", "--shell", "-c", "--comment", "--gecos", "-G", "--groups"]);
                match name {
                    Some(name) => {
                        let uid = opts.get("-u").or(opts.get("--uid")).and_then(|u| u.parse().ok());
                        let group = opts.get("-g").or(opts.get("--gid")).or(opts.get("--ingroup")).cloned();
                        let home = opts.get("-d").or(opts.get("--home")).or(opts.get("--home-dir")).cloned();
                        self.users.insert(name.clone(), AddedUser { uid, group, home });
                        ok(self, format!("user {name}: [image] user (base-files writes /etc/passwd and the home)"))
                    }
                    None => self.note(line, shown.clone(), Outcome::NotTranslated, "no user name".into()),
                }
            }
            ["mkdir", rest @ ..] => {
                for d in rest.iter().filter(|a| !a.starts_with('-')) {
                    let d = self.image_path(d);
                    self.mkdirs.push((ins.line, d));
                }
            }
            ["chmod", rest @ ..] => self.chmod(line, &shown, rest),
            ["chown", rest @ ..] => self.chown(line, &shown, rest),
            [py, "-m", "pip", rest @ ..] if is_python(py) => self.pip(ins, &shown, rest),
            [pip, rest @ ..] if is_pip(pip) => self.pip(ins, &shown, rest),
            [py, "-c", code, ..] if is_python(py) && code.contains("snapshot_download") => self.model(ins, &shown, code),
            _ => self.note(
                line,
                shown.clone(),
                Outcome::NotTranslated,
                "envbuild runs no command at build time: put its result in the context and COPY it ([[files]]), or name what it installs ([base] debian packages, [python] requirements)".into(),
            ),
        }
    }

    fn pip(&mut self, ins: &Instruction, shown: &str, args: &[&str]) {
        let line = Some(ins.line);
        let Some((&sub, rest)) = args.split_first() else {
            return;
        };
        if sub != "install" {
            self.note(
                line,
                shown.to_string(),
                Outcome::NotTranslated,
                format!("pip {sub}: only `pip install` is translated"),
            );
            return;
        }
        let mut reqs = Vec::new();
        let mut skipped = Vec::new();
        // pip, setuptools, wheel: the installer's own tools.
        let mut tools = Vec::new();
        let mut files = Vec::new();
        let mut indexes = Vec::new();
        let mut it = rest.iter();
        while let Some(&a) = it.next() {
            match a {
                "-r" | "--requirement" => files.extend(it.next().copied()),
                "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links" => {
                    indexes.push(a.to_string());
                    it.next();
                }
                _ if a.starts_with("--requirement=") => files.push(&a["--requirement=".len()..]),
                _ if a.starts_with("--index-url=")
                    || a.starts_with("--extra-index-url=")
                    || a.starts_with("--find-links=") =>
                {
                    indexes.push(a.split('=').next().unwrap_or(a).to_string())
                }
                "-c" | "--constraint" | "-e" | "--editable" | "-t" | "--target" | "--prefix"
                | "--root" => {
                    skipped.push(format!("{a} {}", it.next().unwrap_or(&"")));
                }
                _ if a.starts_with('-') => {}
                _ => reqs.push(a.to_string()),
            }
        }
        let mut details = Vec::new();
        let mut outcome = Outcome::Translated;
        for file in files {
            match self.requirements_file(file) {
                Ok((path, found)) => {
                    details.push(format!(
                        "{} requirements from {}",
                        found.len(),
                        path.display()
                    ));
                    reqs.extend(found);
                }
                Err(why) => {
                    outcome = Outcome::NotTranslated;
                    details.push(why);
                }
            }
        }
        let mut added = Vec::new();
        let mut locals = Vec::new();
        for r in reqs {
            let name = r
                .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if matches!(name.as_str(), "pip" | "setuptools" | "wheel") {
                tools.push(r);
                continue;
            }
            let mut r = r;
            if let Some((base, _local)) = local_version(&r) {
                locals.push(format!("{r} as {base}"));
                r = base;
            }
            match crate::python::pep508::parse_requirement::<pep508_rs::VerbatimUrl>(&r) {
                Ok(_) => {
                    added.push(r.clone());
                    let py = self.draft.python.get_or_insert_with(PythonDraft::default);
                    if !py.requirements.contains(&r) {
                        py.requirements.push(r);
                    }
                }
                Err(e) => {
                    outcome = Outcome::NotTranslated;
                    details.push(format!(
                        "{r:?} is not a PEP 508 requirement: {}",
                        e.lines().next().unwrap_or("")
                    ));
                }
            }
        }
        if !locals.is_empty() {
            if outcome == Outcome::Translated {
                outcome = Outcome::Check;
            }
            details.push(format!("pinned {}: a local version (+...) names a build on another index; the configured index's wheels of that version must be the build you want (PyPI's torch 2.1.0 is the CUDA 12.1 build)", locals.join(", ")));
        }
        if !indexes.is_empty() {
            if outcome == Outcome::Translated {
                outcome = Outcome::Check;
            }
            details.push(format!("{} not translated: envbuild reads indexes from your configuration (ENVBUILD_INDEX_URL, PIP_INDEX_URL, pip.conf) or [python] index", indexes.join(", ")));
        }

        let mut detail = if added.is_empty() && !tools.is_empty() && details.is_empty() {
            format!(
                "not needed: envbuild installs wheels itself ({})",
                std::mem::take(&mut tools).join(", ")
            )
        } else if added.is_empty() {
            String::from("no requirements")
        } else {
            format!("[python] requirements {}", added.join(", "))
        };
        if !tools.is_empty() {
            details.push(format!(
                "skipped {} (envbuild installs wheels itself)",
                tools.join(", ")
            ));
        }
        if !skipped.is_empty() {
            details.push(format!("skipped {}", skipped.join(", ")));
        }
        for d in details {
            detail.push_str("; ");
            detail.push_str(&d);
        }
        self.note(line, shown.to_string(), outcome, detail);
    }

    /// The requirements of `pip install -r FILE`, read from the context
    /// file the COPY placed at FILE.
    fn requirements_file(&mut self, file: &str) -> Result<(PathBuf, Vec<String>), String> {
        let in_image = self.image_path(file);
        let Some(src) = self.context_source(&in_image) else {
            return Err(format!("-r {file}: no COPY placed {in_image} in the image, so its requirements are unknown"));
        };
        let text = crate::io::read_regular_to_string(&src)
            .map_err(|e| format!("-r {file}: cannot read {}: {e}", src.display()))?;
        self.consumed.push(in_image);
        let mut out = Vec::new();
        for raw in text.lines() {
            let line = raw.split(" #").next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
                continue;
            }
            out.push(line.to_string());
        }
        Ok((relative_to(&src, &self.context), out))
    }

    /// The context path a COPY placed at `in_image` (directly, or inside a
    /// copied directory).
    fn context_source(&self, in_image: &str) -> Option<PathBuf> {
        self.copied.iter().rev().find_map(|c| {
            if c.dst == in_image {
                Some(c.src.clone())
            } else {
                in_image
                    .strip_prefix(&format!("{}/", c.dst))
                    .map(|rest| c.src.join(rest))
                    .filter(|p| p.is_file())
            }
        })
    }

    fn model(&mut self, ins: &Instruction, shown: &str, code: &str) {
        let line = Some(ins.line);
        let arg = |name: &str| -> Option<String> {
            let re = regex::Regex::new(&format!(r#"{name}\s*=\s*['"]([^'"]+)['"]"#))
                .expect("valid regex");
            re.captures(code).map(|c| c[1].to_string())
        };
        let id = regex::Regex::new(
            r#"snapshot_download\(\s*(?:model_id\s*=\s*|repo_id\s*=\s*)?['"]([^'"]+)['"]"#,
        )
        .expect("valid regex")
        .captures(code)
        .map(|c| c[1].to_string());
        let hub = if code.contains("modelscope") {
            "modelscope"
        } else if code.contains("huggingface_hub") {
            "huggingface"
        } else {
            ""
        };
        let (Some(id), false) = (id, hub.is_empty()) else {
            self.note(line, shown.to_string(), Outcome::NotTranslated, "a snapshot_download envbuild cannot read (expected modelscope's or huggingface_hub's snapshot_download('OWNER/NAME', ...))".into());
            return;
        };
        let name = super::sanitize_name(id.rsplit('/').next().unwrap_or(&id));
        let revision = arg("revision");
        let cache_dir = arg("cache_dir").map(|d| self.image_path(&d));
        let mut detail = format!("[models.{name}] source = \"{hub}:{id}\"");
        let path = match (&cache_dir, hub) {
            (Some(dir), "modelscope") => {
                let (owner, repo) = id.split_once('/').unwrap_or(("", &id));
                let p = format!(
                    "{dir}/{owner}/{}",
                    crate::model::layout::modelscope_dir_name(repo)
                );
                detail.push_str(&format!(
                    ", path = {p:?} (where snapshot_download(cache_dir=...) puts it)"
                ));
                Some(p)
            }
            (Some(dir), _) => {
                self.draft
                    .image
                    .env
                    .push(("HF_HUB_CACHE".into(), dir.clone()));
                detail.push_str(&format!(", in the Hugging Face cache layout; [image] env HF_HUB_CACHE = {dir:?} so the client finds it there"));
                None
            }
            (None, _) => None,
        };
        // Without `revision`, the lock pins the default branch's commit.
        self.draft.models.push(ModelDraft {
            name,
            source: format!("{hub}:{id}"),
            revision,
            path,
            owner: None,
        });
        self.note(line, shown.to_string(), Outcome::Translated, detail);
    }

    fn chmod(&mut self, line: Option<usize>, shown: &str, args: &[&str]) {
        let args: Vec<&str> = args.iter().copied().filter(|a| *a != "-R").collect();
        let Some((&mode, paths)) = args.split_first() else {
            return;
        };
        let mode = match mode {
            "+x" | "a+x" | "u+x" | "ugo+x" | "755" | "0755" => "0755".to_string(),
            m if m.len() <= 4 && m.bytes().all(|b| (b'0'..=b'7').contains(&b)) => {
                format!("{m:0>4}")
            }
            _ => {
                self.note(
                    line,
                    shown.to_string(),
                    Outcome::NotTranslated,
                    format!("mode {mode:?}: only octal modes and +x are translated"),
                );
                return;
            }
        };
        let mut missing = Vec::new();
        let mut inside = Vec::new();
        for p in paths {
            let p = self.image_path(p);
            match self.copied.iter().rev().find(|c| c.dst == p) {
                Some(c) => self.draft.files[c.file].mode = Some(mode.clone()),
                None => match self.context_source(&p) {
                    // Inside a copied directory: the context file's mode is kept.
                    Some(src) if mode == "0755" && is_executable(&src) => inside.push(p),
                    _ => missing.push(p),
                },
            }
        }
        if missing.is_empty() && !inside.is_empty() {
            self.note(
                line,
                shown.to_string(),
                Outcome::Translated,
                format!(
                    "{}: already executable in the context (its mode is kept)",
                    inside.join(", ")
                ),
            );
        } else if missing.is_empty() {
            self.note(
                line,
                shown.to_string(),
                Outcome::Translated,
                format!("[[files]] mode = {mode:?}"),
            );
        } else {
            self.note(
                line,
                shown.to_string(),
                Outcome::NotTranslated,
                format!(
                    "{}: not placed by a COPY here (only a copied path's mode can be set)",
                    missing.join(", ")
                ),
            );
        }
    }

    fn chown(&mut self, line: Option<usize>, shown: &str, args: &[&str]) {
        let args: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with('-'))
            .collect();
        let Some((&owner, paths)) = args.split_first() else {
            return;
        };
        let owner = owner.split(':').next().unwrap_or(owner).to_string();
        let mut missing = Vec::new();
        for p in paths {
            let p = self.image_path(p);
            match self.copied.iter().rev().find(|c| c.dst == p) {
                Some(c) => self.draft.files[c.file].owner = Some(owner.clone()),
                None => missing.push(p),
            }
        }
        if missing.is_empty() {
            self.note(
                line,
                shown.to_string(),
                Outcome::Translated,
                format!("[[files]] owner = {owner:?}"),
            );
        } else {
            self.note(
                line,
                shown.to_string(),
                Outcome::NotTranslated,
                format!(
                    "{}: not placed by a COPY here (give [[files]] an owner, or a model `owner`)",
                    missing.join(", ")
                ),
            );
        }
    }

    fn copy(&mut self, ins: &Instruction) {
        let mut owner = None;
        let mut mode = None;
        for (name, value) in &ins.flags {
            match name.as_str() {
                "from" => {
                    self.not(ins, "copies from another stage or image: a build product envbuild does not build; put the file in the context");
                    return;
                }
                "chown" => owner = Some(value.split(':').next().unwrap_or(value).to_string()),
                "chmod" => mode = Some(format!("{value:0>4}")),
                "link" => {}
                _ => {}
            }
        }
        let words = match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => match shlex::split(s) {
                Some(w) => w,
                None => {
                    self.not(ins, "unbalanced quotes");
                    return;
                }
            },
        };
        let Some((dst, srcs)) = words.split_last() else {
            self.not(ins, "no source and destination");
            return;
        };
        if srcs.is_empty() {
            self.not(ins, "no source");
            return;
        }
        let dir_dst = dst.ends_with('/') || srcs.len() > 1 || dst == "." || dst == "./";
        let dst = self.image_path(dst);
        let mut placed = Vec::new();
        for src in srcs {
            if src.contains("://") {
                self.not(ins, format!("{src}: a URL: give it as a [[wheels]] url or a model `source` with its sha256"));
                continue;
            }
            if src.contains(['*', '?', '[']) {
                self.not(
                    ins,
                    format!("{src}: wildcards are not translated: name each path"),
                );
                continue;
            }
            let rel = Path::new(src.trim_start_matches("./"));
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                self.not(ins, format!("{src}: outside the build context"));
                continue;
            }
            let ctx = self.context.join(rel);
            if ins.keyword == "ADD" && is_archive(src) {
                self.not(ins, format!("{src}: ADD unpacks archives; envbuild copies files as they are: unpack it into the context"));
                continue;
            }
            let is_dir = ctx.is_dir();
            let base = Path::new(src.trim_end_matches('/'))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = if dir_dst && !is_dir {
                format!("{}/{base}", dst.trim_end_matches('/'))
            } else {
                dst.clone()
            };
            let src_rel = relative_to(&ctx, &self.spec_dir)
                .to_string_lossy()
                .into_owned();
            self.draft.files.push(FileDraft {
                src: src_rel,
                dst: target.clone(),
                owner: owner.clone(),
                mode: mode.clone(),
            });
            self.copied.push(Copied {
                src: ctx.clone(),
                dst: target.clone(),
                file: self.draft.files.len() - 1,
            });
            if !ctx.exists() {
                placed.push(format!("{target} (from {src}: missing in the context; create it before `envbuild lock`)"));
            } else {
                placed.push(target);
            }
        }
        if placed.is_empty() {
            return;
        }
        let detail = format!("[[files]] {}", placed.join(", "));
        if detail.contains("missing in the context") {
            self.check(ins, detail);
        } else {
            self.ok(ins, detail);
        }
    }

    fn finish(mut self) -> Translation {
        // Files consumed by `pip install -r` stay out of the image.
        for path in std::mem::take(&mut self.consumed) {
            if let Some(i) = self.draft.files.iter().position(|f| f.dst == path) {
                self.draft.files.remove(i);
                self.note(
                    None,
                    path.clone(),
                    Outcome::Translated,
                    "read by `pip install -r` into [python] requirements; not placed in the image"
                        .into(),
                );
            }
        }
        self.python_layout();
        self.script_interpreters();
        self.placed_directories();
        self.owners_under_home();
        self.cmd_under_root();
        let chain = if self.stage_names.is_empty() {
            String::new()
        } else {
            format!(" (stages {})", self.stage_names.join(" → "))
        };
        let mut header = vec![
            format!("Made by `envbuild init --from-dockerfile` from a Dockerfile{chain}."),
            "Review it, then: envbuild lock SPEC && envbuild realize SPEC -o image.tar".into(),
        ];
        let t = Translation {
            draft: self.draft.clone(),
            notes: self.notes.clone(),
        };
        let notes = t.header_notes();
        if !notes.is_empty() {
            header.push(String::new());
            header
                .push("What to look at (the full report is what `envbuild init` printed):".into());
            header.extend(notes);
        }
        self.draft.header = header;
        Translation {
            draft: self.draft,
            notes: self.notes,
        }
    }

    /// `[python]` for the interpreter the packages hold.
    fn python_layout(&mut self) {
        let Some(py) = self.draft.python.as_mut() else {
            return;
        };
        let suite = self
            .draft
            .debian
            .as_ref()
            .map(|d| d.suite.clone())
            .unwrap_or_else(|| DEFAULT_SUITE.into());
        let from_packages = self.draft.debian.as_ref().and_then(|d| {
            d.packages.iter().find_map(|p| {
                let v = p.strip_prefix("python3.")?;
                v.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| format!("3.{v}"))
            })
        });
        let version = self.python_version.clone().or(from_packages);
        let mut notes = Vec::new();
        let version = match version {
            Some(v) => v,
            None => {
                let v = default_python(&suite).to_string();
                notes.push(format!("added python{v}: the Dockerfile installs Python packages but names no interpreter package"));
                v
            }
        };
        py.version = version.clone();
        py.site_packages = format!("/usr/local/lib/python{version}/dist-packages");
        let debian = self.draft.debian.get_or_insert_with(|| DebianDraft {
            suite: suite.clone(),
            packages: Vec::new(),
        });
        debian.add(&format!("python{version}"));
        if default_python(&suite) == version && debian.add("python3") {
            notes.push(format!("added python3: `python3` and `pip` are Debian's python{version} (the Dockerfile's commands call python3)"));
        }
        py.shebang = if debian.has("python3") {
            "/usr/bin/python3".into()
        } else {
            format!("/usr/bin/python{version}")
        };
        for n in notes {
            self.note(None, "[base] debian".into(), Outcome::Translated, n);
        }
    }

    /// Copied scripts whose first line needs a shell the packages lack.
    fn script_interpreters(&mut self) {
        let mut wanted = Vec::new();
        for c in &self.copied {
            if !c.src.is_file() || c.src.metadata().map(|m| m.len() > 1 << 20).unwrap_or(true) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&c.src) else {
                continue;
            };
            let first = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
            let first = String::from_utf8_lossy(first);
            let Some(interp) = first.strip_prefix("#!") else {
                continue;
            };
            let mut words = interp.split_whitespace();
            let prog = match words.next() {
                Some("/usr/bin/env") => words.next().unwrap_or(""),
                Some(p) => p.rsplit('/').next().unwrap_or(p),
                None => "",
            };
            let package = match prog {
                "bash" => "bash",
                "sh" => "dash",
                _ => continue,
            };
            wanted.push((package, c.dst.clone(), first.trim().to_string()));
        }
        for (package, dst, line) in wanted {
            match self.draft.debian.as_mut().map(|d| d.add(package)) {
                Some(true) => self.note(None, dst, Outcome::Translated, format!("added {package} to [base] debian: the script starts with `{line}` (a base image would have had it)")),
                Some(false) => {}
                None => self.note(None, dst, Outcome::Check, format!("the script starts with `{line}`, but the base is empty: nothing provides its interpreter")),
            }
        }
    }

    /// `mkdir -p` of a directory nothing is placed in needs the user's hand.
    fn placed_directories(&mut self) {
        let mut placed: Vec<String> = self.draft.files.iter().map(|f| f.dst.clone()).collect();
        placed.extend(self.draft.models.iter().filter_map(|m| m.path.clone()));
        placed.extend(self.draft.image.workdir.clone());
        if let Some(u) = &self.draft.image.user {
            placed.push(
                u.home
                    .clone()
                    .unwrap_or_else(|| format!("/home/{}", u.name)),
            );
        }
        for (line, dir) in std::mem::take(&mut self.mkdirs) {
            let covered = placed
                .iter()
                .any(|p| *p == dir || p.starts_with(&format!("{dir}/")));
            let (outcome, detail) = if covered {
                (
                    Outcome::Translated,
                    "not needed: the directories of placed paths are made".to_string(),
                )
            } else {
                (
                    Outcome::NotTranslated,
                    "an empty directory: put one in the context and add it as [[files]]"
                        .to_string(),
                )
            };
            self.note(Some(line), format!("mkdir {dir}"), outcome, detail);
        }
    }

    /// A model under the user's home belongs to the user: its client
    /// writes cache files next to it.
    fn owners_under_home(&mut self) {
        let Some(u) = &self.draft.image.user else {
            return;
        };
        let home = u
            .home
            .clone()
            .unwrap_or_else(|| format!("/home/{}", u.name));
        let name = u.name.clone();
        for m in &mut self.draft.models {
            let path = m.path.clone().unwrap_or_default();
            if m.path.is_none() || path.starts_with(&format!("{home}/")) {
                m.owner = Some(name.clone());
            }
        }
    }

    /// `/root` is 0700: another user cannot run what is under it.
    fn cmd_under_root(&mut self) {
        let Some(u) = self.draft.image.user.clone() else {
            return;
        };
        let argv: Vec<String> = self
            .draft
            .image
            .entrypoint
            .iter()
            .chain(&self.draft.image.cmd)
            .flatten()
            .cloned()
            .collect();
        if let Some(p) = argv.iter().find(|a| a.starts_with("/root/")) {
            self.note(
                None,
                format!("CMD {p}"),
                Outcome::Check,
                format!("the image runs as {}, but {p} is under /root (mode 0700, root's home): {} cannot reach it; place it elsewhere (e.g. /usr/local/bin) in [[files]] and [image] cmd", u.name, u.name),
            );
        }
    }
}

/// `IMAGE[:TAG][@DIGEST]` → (repository, tag).
fn split_image(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

fn suite_of(tag: &str) -> Option<String> {
    for (key, suite) in [
        ("bookworm", "bookworm"),
        ("bullseye", "bullseye"),
        ("trixie", "trixie"),
        ("12", "bookworm"),
        ("11", "bullseye"),
        ("13", "trixie"),
    ] {
        if tag.split(['-', '.']).any(|part| part == key) {
            return Some(suite.to_string());
        }
    }
    None
}

/// The suite's `python3`.
fn default_python(suite: &str) -> &'static str {
    match suite {
        "bullseye" => "3.9",
        "trixie" => "3.13",
        _ => "3.11",
    }
}

fn is_python(word: &str) -> bool {
    let w = word.rsplit('/').next().unwrap_or(word);
    w == "python"
        || w == "python3"
        || w.strip_prefix("python3.")
            .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()))
}

fn is_pip(word: &str) -> bool {
    let w = word.rsplit('/').next().unwrap_or(word);
    w == "pip"
        || w == "pip3"
        || w.strip_prefix("pip3.")
            .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()))
}

fn is_cache_path(p: &str) -> bool {
    [
        "/var/lib/apt/lists",
        "/var/cache/apt",
        "/root/.cache",
        "/tmp/",
        "~/.cache",
    ]
    .iter()
    .any(|c| p.starts_with(c))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o100 != 0)
}

fn is_archive(p: &str) -> bool {
    [".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar.zst"]
        .iter()
        .any(|x| p.ends_with(x))
}

/// `NAME==V+LOCAL` → (`NAME==V`, `LOCAL`).
fn local_version(req: &str) -> Option<(String, String)> {
    let (head, local) = req.split_once('+')?;
    if !head.contains("==")
        || local.is_empty()
        || !local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        return None;
    }
    Some((head.to_string(), local.to_string()))
}

/// A command's `-x VALUE` options (for the names in `with_value`) and its
/// last operand.
fn options(args: &[&str], with_value: &[&str]) -> (BTreeMap<String, String>, Option<String>) {
    let mut opts = BTreeMap::new();
    let mut operand = None;
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        if let Some((k, v)) = a.split_once('=').filter(|(k, _)| k.starts_with("--")) {
            opts.insert(k.to_string(), v.to_string());
        } else if with_value.contains(&a) {
            if let Some(v) = it.next() {
                opts.insert(a.to_string(), v.to_string());
            }
        } else if !a.starts_with('-') {
            operand = Some(a.to_string());
        }
    }
    (opts, operand)
}

/// A RUN's words split into commands at `&&`, `||`, `;` and `|`.
fn split_commands(words: &[String]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    for w in words {
        match w.as_str() {
            "&&" | "||" | ";" | "|" => out.push(Vec::new()),
            _ => {
                if let Some(head) = w.strip_suffix(';').filter(|_| !w.ends_with("\\;")) {
                    out.last_mut().expect("non-empty").push(head.to_string());
                    out.push(Vec::new());
                } else {
                    out.last_mut().expect("non-empty").push(w.clone());
                }
            }
        }
    }
    out.retain(|c| !c.is_empty());
    out
}

fn shorten(s: &str) -> String {
    const MAX: usize = 100;
    if s.chars().count() > MAX {
        format!("{}…", s.chars().take(MAX - 1).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        shlex::split(s).unwrap()
    }

    #[test]
    fn a_run_splits_into_its_commands() {
        let got = split_commands(&words(
            "apt-get update && apt-get install -y a b; rm -rf /x || true",
        ));
        assert_eq!(got.len(), 4);
        assert_eq!(got[1], words("apt-get install -y a b"));
        assert_eq!(got[2], words("rm -rf /x"));
    }

    #[test]
    fn local_versions_are_split_off_exact_pins_only() {
        assert_eq!(
            local_version("torch==2.1.0+cu121"),
            Some(("torch==2.1.0".into(), "cu121".into()))
        );
        assert_eq!(local_version("torch>=2"), None);
    }

    #[test]
    fn suites_come_from_debian_and_python_tags() {
        assert_eq!(suite_of("bookworm-slim").as_deref(), Some("bookworm"));
        assert_eq!(suite_of("3.11-slim-bullseye").as_deref(), Some("bullseye"));
        assert_eq!(suite_of("12.5").as_deref(), Some("bookworm"));
        assert_eq!(
            split_image("nvidia/cuda:12.1.1-runtime-ubuntu22.04"),
            ("nvidia/cuda", "12.1.1-runtime-ubuntu22.04")
        );
        assert_eq!(split_image("host:5000/x"), ("host:5000/x", "latest"));
    }
}
