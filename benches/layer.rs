//! The layer writer on one tree, timed: what `scripts/bench-layer.py`
//! runs beside `tar | pigz` and `tar | zstd -T0` on the same tree.
//!
//! Usage: cargo bench --bench layer -- DIR gzip:LEVEL|zstd:LEVEL OUT
//! Prints one JSON line: seconds, blob size and digest, tar size, threads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use envbuild::oci::compression::{compression_threads, Compression};
use envbuild::oci::layer::{write_layer, LayerSource};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [dir, compression, out] = args.as_slice() else {
        eprintln!("usage: layer DIR gzip:LEVEL|zstd:LEVEL OUT");
        std::process::exit(2);
    };
    let compression = match compression.split_once(':') {
        Some(("gzip", l)) => Compression::Gzip {
            level: l.parse().expect("a gzip level"),
        },
        Some(("zstd", l)) => Compression::Zstd {
            level: l.parse().expect("a zstd level"),
        },
        _ => {
            eprintln!("expected gzip:LEVEL or zstd:LEVEL, found {compression}");
            std::process::exit(2);
        }
    };
    let sources = [LayerSource {
        root: PathBuf::from(dir),
        prefix: String::new(),
        label: dir.clone(),
    }];
    let started = Instant::now();
    let blob = write_layer(
        &sources,
        &BTreeMap::new(),
        1,
        compression,
        std::path::Path::new(out),
    )
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"seconds\": {seconds:.3}, \"size\": {}, \"tar_size\": {}, \"digest\": \"{}\", \"threads\": {}}}",
        blob.size,
        blob.tar_size,
        blob.digest,
        compression_threads()
    );
}
