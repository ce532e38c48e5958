//! Several processes adding to one store at once all succeed.

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
