//! What envbuild prints on stderr while it works: `--progress plain` (one
//! line per finished step, snapshotted with times masked), `--progress tty`
//! under a pseudo-terminal (every line finished, the totals right), `none`
//! and `-q`, `ENVBUILD_LOG` (requests logged, never a URL's password), and
//! `envbuild --help`.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::http::{serve, Behaviour};
use common::*;

/// envbuild with none of the variables that change what it prints.
fn quiet_env(c: &mut Command) -> &mut Command {
    c.env_remove("ENVBUILD_STORE")
        .env_remove("ENVBUILD_PROGRESS")
        .env_remove("ENVBUILD_LOG")
        .env_remove("NO_COLOR")
}

fn realize_cmd(store: &Path, spec: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = envbuild();
    quiet_env(&mut c);
    c.arg("--store")
        .arg(store)
        .arg("realize")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .args(extra);
    c
}

/// Times, durations, sizes and the temporary directory masked; lines of one
/// builder that run in parallel (their order is the workers') sorted; the
/// periodic summaries (timing-dependent) left out.
fn masked(text: &str, tmp: &Path) -> String {
    let stamp = regex::Regex::new(r"^\[ *\d+\.\ds\]").unwrap();
    let took = regex::Regex::new(r"in \d+(\.\d+)?(s|ms|µs)\b").unwrap();
    let periodic = regex::Regex::new(r"^\[ *\d+\.\ds\] \d+/\d+ steps").unwrap();
    // Sizes depend on the host's gcc and libc (the static hello).
    let size = regex::Regex::new(r"\(\d+(\.\d+)? (B|KiB|MiB|GiB)\)").unwrap();
    let text = text.replace(&tmp.display().to_string(), "[TMP]");
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !periodic.is_match(l))
        .map(|l| {
            let l = stamp.replace(l, "[T]");
            let l = size.replace_all(&l, "(SIZE)");
            took.replace_all(&l, "in [TIME]").into_owned()
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let builder = |l: &str| l.split_whitespace().nth(1).unwrap_or("").to_string();
    for l in lines {
        if run.first().is_some_and(|f| builder(f) != builder(&l)) {
            run.sort();
            out.append(&mut run);
        }
        run.push(l);
    }
    run.sort();
    out.append(&mut run);
    out.join("\n")
}

#[test]
fn plain_progress_is_one_line_per_finished_step_then_the_totals() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let out = tmp.path().join("hello.tar");
    let o = realize_cmd(&store, &spec, &out, &["--progress", "plain"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "realize failed: {err}");
    assert!(
        !err.contains('\x1b'),
        "plain progress has no escape sequences: {err:?}"
    );
    // stdout is only the digest.
    let stdout = stdout(&o);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("sha256:"), "{stdout}");
    insta::assert_snapshot!("realize_hello_plain", masked(&err, tmp.path()));

    // A second realize builds nothing: every step is counted as done.
    let o = realize_cmd(&store, &spec, &out, &["--progress", "plain"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    insta::assert_snapshot!("realize_hello_plain_warm", masked(&err, tmp.path()));
}

#[test]
fn help_lists_the_global_flags() {
    let mut c = envbuild();
    quiet_env(&mut c);
    let o = c.arg("--help").output().unwrap();
    assert!(o.status.success());
    insta::assert_snapshot!("help", stdout(&o));
}

/// The bytes after the last escape sequence or carriage return that moved
/// the cursor: what stays on the screen at the end.
fn after_last_redraw(s: &str) -> &str {
    let cut = s
        .rfind("\x1b[")
        .map(|i| {
            // Skip the sequence itself.
            let rest = &s[i + 2..];
            let end = rest
                .find(|c: char| c.is_ascii_alphabetic())
                .map_or(rest.len(), |e| e + 1);
            i + 2 + end
        })
        .unwrap_or(0);
    &s[cut..]
}

#[test]
fn tty_progress_under_a_pseudo_terminal_ends_with_every_line_finished() {
    require_tool("script", "util-linux");
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let out = tmp.path().join("hello.tar");
    let typescript = tmp.path().join("typescript");
    let totals = regex::Regex::new(r"envbuild: (\d+)/(\d+) steps in \d+\.\ds").unwrap();
    let sgr_colour = regex::Regex::new(r"\x1b\[[0-9;]*m").unwrap();
    for no_color in [false, true] {
        let _ = fs::remove_dir_all(&store);
        let _ = fs::remove_file(spec.with_extension("toml.lock"));
        let cmd = format!(
            "{} --store {} realize {} -o {} --progress tty",
            env!("CARGO_BIN_EXE_envbuild"),
            store.display(),
            spec.display(),
            out.display()
        );
        let mut c = Command::new("script");
        quiet_env(&mut c);
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let o = c
            .env("TERM", "xterm")
            .args(["-qfec", &cmd])
            .arg(&typescript)
            .output()
            .unwrap();
        assert!(o.status.success(), "script: {}", stderr(&o));
        let screen = String::from_utf8_lossy(&fs::read(&typescript).unwrap()).into_owned();
        // The live display drew worker lines and the header.
        assert!(screen.contains("unpack-wheel hello_greeter"), "{screen:?}");
        assert!(screen.contains("envbuild"), "{screen:?}");
        // The end: the finished header line, the summary and the digest,
        // with no redraw and no spinner frame after them.
        let end = after_last_redraw(&screen);
        let spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏";
        assert!(
            !end.contains(|c| spinner.contains(c)),
            "a spinner frame after the last line: {end:?}"
        );
        let caps = totals
            .captures(end)
            .unwrap_or_else(|| panic!("the final totals line: {end:?}"));
        assert_eq!(caps[1], caps[2], "every step done: {end:?}");
        // 4 components, the union check, 4 layers, the image, the export.
        assert_eq!(&caps[2], "11", "{end:?}");
        assert!(end.contains("steps built"), "{end:?}");
        assert!(end.contains("sha256:"), "{end:?}");
        if no_color {
            assert!(
                !sgr_colour.is_match(&screen),
                "NO_COLOR: no colour: {screen:?}"
            );
        } else {
            assert!(sgr_colour.is_match(&screen), "colour on a terminal");
        }
    }
}

#[test]
fn progress_none_prints_only_the_summary_and_quiet_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = hello_example(tmp.path());
    let store = tmp.path().join("store");
    let out = tmp.path().join("hello.tar");
    let o = realize_cmd(&store, &spec, &out, &["--progress", "none"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "only the summary: {err}");
    assert!(lines[0].starts_with("hello:latest -> "), "{err}");
    assert!(lines[0].contains("steps built"), "{err}");

    // ENVBUILD_PROGRESS is the same setting.
    let _ = fs::remove_dir_all(&store);
    let o = realize_cmd(&store, &spec, &out, &[])
        .env("ENVBUILD_PROGRESS", "none")
        .output()
        .unwrap();
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    let _ = fs::remove_dir_all(&store);
    let o = realize_cmd(&store, &spec, &out, &["-q"]).output().unwrap();
    assert!(o.status.success());
    assert_eq!(stderr(&o), "", "-q prints nothing on stderr");
    assert!(stdout(&o).starts_with("sha256:"));

    // A mode that does not exist is refused, naming the choices.
    let o = realize_cmd(&store, &spec, &out, &["--progress", "fancy"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("tty") && err.contains("plain"), "{err}");
}

#[test]
fn envbuild_log_debug_shows_requests_and_never_a_password() {
    let wheel = build_wheel(
        "remote",
        "1.0",
        &[("remote/__init__.py", b"print('remote')\n")],
        &[],
    );
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wheel));
    let server = serve(vec![(
        "/remote-1.0-py3-none-any.whl",
        Behaviour::Serve(wheel),
    )]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir.join("app/hello.txt"), b"hi\n", 0o644);
    let url = server
        .base
        .replace("http://", "http://builder:hunter2-s3cret@")
        + "/remote-1.0-py3-none-any.whl";
    let spec = dir.join("remote.toml");
    fs::write(
        &spec,
        format!(
            "[env]\nname = \"remote\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n\
             [[files]]\nsrc = \"app\"\ndst = \"/app\"\n\n[[wheels]]\nurl = \"{url}\"\nsha256 = \"{sha}\"\n"
        ),
    )
    .unwrap();
    let o = realize_cmd(
        &dir.join("store"),
        &spec,
        &dir.join("remote.tar"),
        &["--progress", "plain"],
    )
    .env("ENVBUILD_LOG", "envbuild::net=debug")
    .output()
    .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let host = server.base.trim_start_matches("http://");
    let request = err
        .lines()
        .find(|l| l.contains("HTTP request") && l.contains(host))
        .unwrap_or_else(|| panic!("a request line for {host}: {err}"));
    assert!(request.contains("envbuild::net"), "{request}");
    assert!(request.contains("remote-1.0-py3-none-any.whl"), "{request}");
    assert!(
        err.contains("<redacted>@"),
        "the user info is shown redacted: {err}"
    );
    assert!(!err.contains("hunter2"), "the password never shows: {err}");
    assert!(
        err.lines()
            .any(|l| l.contains("fetch remote-1.0-py3-none-any.whl") && l.contains("done in")),
        "the download's plain line: {err}"
    );
    // Other modules' debug events are filtered out.
    assert!(!err.contains("step started"), "{err}");

    // -vv: debug for all of envbuild, the steps included.
    let o = realize_cmd(
        &dir.join("store2"),
        &spec,
        &dir.join("remote.tar"),
        &["--progress", "none", "-vv"],
    )
    .output()
    .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("step started") && err.contains("drv="),
        "{err}"
    );
    assert!(err.contains("HTTP request"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
