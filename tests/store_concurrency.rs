//! Several processes using one store at once: adds all succeed, and `gc`
//! running in a loop never breaks a realize.

mod common;

use common::*;

#[test]
fn four_adds_of_one_tree_and_four_of_different_trees_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let same = tmp.path().join("same");
    many_files(&same, 3000, 1);
    let mut trees = vec![same.clone(), same.clone(), same.clone(), same.clone()];
    for i in 0..4 {
        let t = tmp.path().join(format!("different{i}"));
        many_files(&t, 1500, 100 + i);
        trees.push(t);
    }
    let children: Vec<_> = trees
        .iter()
        .map(|t| {
            envbuild()
                .arg("--store")
                .arg(&store)
                .args(["store", "add"])
                .arg(t)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|c| ok(c.wait_with_output().unwrap(), "concurrent add"))
        .collect();
    for o in &outputs[1..4] {
        assert_eq!(o, &outputs[0], "the same tree gave different items");
    }
    let distinct: std::collections::BTreeSet<_> = outputs.iter().collect();
    assert_eq!(distinct.len(), 5);
    assert_eq!(verify_clean(&store), 5);
}

/// A spec with `wheels` wheels served by URL (fetched into the store, then
/// unpacked from there) and `files` local trees.
fn many_inputs_spec(
    dir: &std::path::Path,
    server_routes: &mut Vec<(String, http::Behaviour)>,
    wheels: usize,
    files: usize,
) -> std::path::PathBuf {
    use sha2::Digest;
    let mut text = String::from(
        "[env]\nname = \"busy\"\nsystem = \"x86_64-linux\"\nsource-date-epoch = 1700000000\n\n",
    );
    let mut rng = Rng::new(7);
    for i in 0..wheels {
        let name = format!("pkg{i}");
        let members: Vec<(String, Vec<u8>)> = (0..150)
            .map(|f| (format!("{name}/m{f:03}.py"), rng.bytes(200 + f)))
            .collect();
        let refs: Vec<(&str, &[u8])> = members
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let bytes = build_wheel(&name, "1.0", &refs, &[]);
        let file = format!("{name}-1.0-py3-none-any.whl");
        text.push_str(&format!(
            "[[wheels]]\nurl = \"{{BASE}}/w/{file}\"\nsha256 = \"{}\"\n\n",
            hex::encode(sha2::Sha256::digest(&bytes))
        ));
        server_routes.push((format!("/w/{file}"), http::Behaviour::Serve(bytes)));
    }
    for i in 0..files {
        let src = dir.join(format!("files{i}"));
        many_files(&src, 300, 50 + i as u64);
        text.push_str(&format!(
            "[[files]]\nsrc = \"files{i}\"\ndst = \"/opt/files{i}\"\n\n"
        ));
    }
    let spec = dir.join("busy.toml");
    std::fs::write(&spec, text).unwrap();
    spec
}

#[test]
fn gc_in_a_loop_never_breaks_a_running_realize() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spec");
    std::fs::create_dir_all(&dir).unwrap();
    let mut routes = Vec::new();
    let spec = many_inputs_spec(&dir, &mut routes, 12, 6);
    let server = http::serve(routes);
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("{BASE}", &server.base)).unwrap();
    for attempt in 0..2 {
        let store = tmp.path().join(format!("store{attempt}"));
        let realize = envbuild()
            .arg("--store")
            .arg(&store)
            .arg("realize")
            .arg(&spec)
            .arg("-o")
            .arg(tmp.path().join(format!("out{attempt}.tar")))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        let collections = std::thread::scope(|s| {
            let gc = s.spawn(|| {
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    ok(run(&store, &[&"store", &"gc"]), "gc during realize");
                    n += 1;
                }
                n
            });
            let out = realize.wait_with_output().unwrap();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            ok(out, &format!("realize {attempt} while gc loops"));
            gc.join().unwrap()
        });
        assert!(collections > 0, "gc never ran during the realize");
        eprintln!("realize {attempt}: {collections} collections ran meanwhile");
        verify_clean(&store);
    }
}
