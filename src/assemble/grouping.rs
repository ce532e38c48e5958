//! Which components share a layer, when there are more components than the
//! layer budget (100).
//!
//! The rule is chosen so that a change to one component changes one layer:
//!
//! 1. With no more components than the budget, each is a layer.
//! 2. Else a component is *alone* (a layer of its own) when it is marked so
//!    (the app's `[[files]]`, a model) or *large*: at least
//!    [`LARGE_COMPONENT`] bytes of NAR (torch, the nvidia-* libraries). If
//!    that leaves no room, the size bound doubles until it does.
//! 3. The others form *runs*: maximal sequences of consecutive components
//!    (in rootfs order) between alone ones. A run is cut after each
//!    component whose *key* — what stays the same when its version changes:
//!    a package's name, a destination — hashes to 0 modulo `m`:
//!    content-defined boundaries, so a component's group depends on its
//!    neighbours' keys, never on the sizes of the components before it.
//! 4. `m` is the smallest power of two that is at least twice the number of
//!    run components per layer left in the budget (so about half the room
//!    is used on average); if the cuts still exceed the budget, `m` doubles.
//!
//! What a change costs: a version bump keeps the component's key, its size
//! class (unless it crosses the large bound) and every cut, so one layer
//! changes — the component's own group. Removing or adding a component
//! changes its group, and when it was (or becomes) a cut, the group beside
//! it: at most two layers. A change that moves the number of run components
//! across a power-of-two threshold of `m` regroups the runs once. Groups
//! keep rootfs order: every layer is a consecutive range of components.

use sha2::{Digest, Sha256};

/// The NAR size from which a component gets a layer of its own.
pub const LARGE_COMPONENT: u64 = 64 << 20;

/// One component, as grouping sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    /// What stays the same when the component's version changes.
    pub key: String,
    /// NAR size.
    pub size: u64,
    /// A layer of its own whatever its size (even past the budget).
    pub own: bool,
}

/// The layers of `components` (given in rootfs order), as lists of
/// component indices in order; at most `budget` of them unless more are
/// marked `own`.
pub fn group_layers(components: &[GroupInput], budget: usize) -> Vec<Vec<usize>> {
    let n = components.len();
    if n <= budget {
        return (0..n).map(|i| vec![i]).collect();
    }
    let mut large = LARGE_COMPONENT;
    let alone = loop {
        let alone: Vec<bool> = components
            .iter()
            .map(|c| c.own || c.size >= large)
            .collect();
        let count = alone.iter().filter(|&&a| a).count();
        let owned = components.iter().filter(|c| c.own).count();
        if count < budget || count == owned {
            break alone;
        }
        large = large.saturating_mul(2);
    };
    let alone_count = alone.iter().filter(|&&a| a).count();
    let run_components = n - alone_count;
    let room = budget.saturating_sub(alone_count).max(1);
    let mut m = (2 * run_components)
        .div_ceil(room)
        .max(2)
        .next_power_of_two() as u64;
    loop {
        let groups = cut(components, &alone, m);
        if groups.len() <= budget || m > n as u64 * 2 {
            return groups;
        }
        m *= 2;
    }
}

/// Groups with runs cut where a key hashes to 0 modulo `m`.
fn cut(components: &[GroupInput], alone: &[bool], m: u64) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for (i, c) in components.iter().enumerate() {
        if alone[i] {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            groups.push(vec![i]);
            continue;
        }
        current.push(i);
        if key_hash(&c.key) % m == 0 {
            groups.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn key_hash(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Components named `names`; those in `big` large, those in `own`
    /// marked own; small sizes from the name, so they follow the component.
    fn inputs(names: &[String], big: &[&str], own: &[&str]) -> Vec<GroupInput> {
        names
            .iter()
            .map(|k| GroupInput {
                key: k.clone(),
                size: if big.contains(&k.as_str()) {
                    200 << 20
                } else {
                    1000 + key_hash(k) % 100_000
                },
                own: own.contains(&k.as_str()),
            })
            .collect()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("package-{i}")).collect()
    }

    /// The groups as sets of keys, so that the layers of two groupings can
    /// be compared.
    fn by_keys(c: &[GroupInput], g: &[Vec<usize>]) -> Vec<Vec<String>> {
        g.iter()
            .map(|l| l.iter().map(|&i| c[i].key.clone()).collect())
            .collect()
    }

    fn changed(a: &[Vec<String>], b: &[Vec<String>]) -> usize {
        b.iter().filter(|l| !a.contains(l)).count()
    }

    #[test]
    fn the_budget_is_kept_in_rootfs_order_with_large_and_own_components_alone() {
        let c = inputs(
            &names(250),
            &["package-10", "package-11", "package-120"],
            &["package-0", "package-249"],
        );
        let g = group_layers(&c, 100);
        assert!(g.len() <= 100, "{} layers", g.len());
        for alone in [0, 10, 11, 120, 249] {
            assert!(g.contains(&vec![alone]), "{alone} alone");
        }
        // Consecutive ranges covering everything once, in order.
        assert_eq!(g.concat(), (0..250).collect::<Vec<_>>());
        assert_eq!(group_layers(&c[..10], 100).len(), 10);
        assert_eq!(g, group_layers(&c, 100), "deterministic");
    }

    #[test]
    fn a_version_bump_changes_one_layer() {
        let before = inputs(&names(230), &["package-5", "package-50"], &["package-229"]);
        let mut after = before.clone();
        // tqdm 4.66.1 -> 4.66.2: the same key, another size.
        after[77].size += 12_345;
        let (a, b) = (group_layers(&before, 100), group_layers(&after, 100));
        assert_eq!(a, b, "the same groups");
        // What changes is the bytes of the one group holding 77.
    }

    #[test]
    fn removing_or_adding_one_component_changes_at_most_two_layers() {
        let all = names(230);
        let (big, own) = (["package-5", "package-50"], ["package-229"]);
        let before = inputs(&all, &big, &own);
        let a = by_keys(&before, &group_layers(&before, 100));
        for removed in [1, 77, 150, 228] {
            let mut keys = all.clone();
            keys.remove(removed);
            let after = inputs(&keys, &big, &own);
            let b = by_keys(&after, &group_layers(&after, 100));
            assert!(
                changed(&a, &b) <= 2,
                "removing {removed}: {} layers changed",
                changed(&a, &b)
            );
        }
        for at in [2, 100, 200] {
            let mut keys = all.clone();
            keys.insert(at, "a-new-package".into());
            let after = inputs(&keys, &big, &own);
            let b = by_keys(&after, &group_layers(&after, 100));
            assert!(
                changed(&a, &b) <= 2,
                "adding at {at}: {} layers changed",
                changed(&a, &b)
            );
        }
    }

    #[test]
    fn too_many_large_components_raise_the_size_bound() {
        let all = names(200);
        let big: Vec<&str> = all[..150].iter().map(String::as_str).collect();
        let c = inputs(&all, &big, &[]);
        let g = group_layers(&c, 100);
        assert!(g.len() <= 100, "{} layers", g.len());
        assert_eq!(g.concat(), (0..200).collect::<Vec<_>>());
    }
}
