//! OCI images: deterministic layer tarballs, image JSON, archive export.
