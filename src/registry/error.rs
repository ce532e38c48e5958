//! Errors of the registry client. Every variant names the registry (its
//! `host[:port]`, passed through [`crate::net::redact`]), the repository and
//! the blob or manifest concerned, what was expected and what was found.
//! No variant holds a credential or a token: they never reach an error.

use std::path::PathBuf;

use crate::net::NetError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A reference that is not `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`.
    #[error("image reference {reference:?}: {problem} (expected HOST[:PORT]/REPO[:TAG][@sha256:HEX], e.g. registry.example:5000/team/app:1)")]
    BadReference { reference: String, problem: String },

    /// A registry (for `login`) that is not `HOST[:PORT]`. Never shown
    /// whole when it holds user information.
    #[error("registry {}: {problem} (expected HOST[:PORT], e.g. registry.example:5000)", shown_registry(.registry))]
    BadRegistry { registry: String, problem: String },

    /// The reference names a digest other than the image's.
    #[error("{registry}/{repo}: the reference asks for manifest {expected}, but the image built from the spec is {found}")]
    OtherDigest {
        registry: String,
        repo: String,
        expected: String,
        found: String,
    },

    /// The request could not be made or answered (connection, timeouts,
    /// retries exhausted, body limit).
    #[error("{registry}/{repo}: {what}{hint}")]
    Net {
        registry: String,
        repo: String,
        what: String,
        /// Said after the cause: what may be wrong (empty when nothing is
        /// known).
        hint: &'static str,
        #[source]
        source: Box<NetError>,
    },

    /// The registry answered a status the step cannot use.
    #[error("{registry}/{repo}: {what}: the registry answered HTTP {status} (expected {expected}){}", detail_text(.detail))]
    Status {
        registry: String,
        repo: String,
        what: String,
        status: u16,
        expected: &'static str,
        /// The registry's own error text (its `errors` array), redacted.
        detail: String,
    },

    /// The registry asks for credentials and none are configured for it.
    #[error("{registry}/{repo}: the registry asks for credentials ({scheme} authentication) and none are configured for {registry} (expected an entry in $DOCKER_CONFIG/config.json or ~/.docker/config.json `auths`, `credHelpers` or `credsStore`, $REGISTRY_AUTH_FILE or $XDG_RUNTIME_DIR/containers/auth.json; `docker login {registry}` writes one)")]
    NeedCredentials {
        registry: String,
        repo: String,
        scheme: String,
    },

    /// The registry refused the configured credentials (or the token they
    /// gave).
    #[error("{registry}/{repo}: the registry refused the credentials configured for it (from {source_name}) for {what}: HTTP {status} after authenticating")]
    Refused {
        registry: String,
        repo: String,
        what: String,
        source_name: String,
        status: u16,
    },

    /// A `WWW-Authenticate` challenge or a token server's answer that
    /// cannot be used.
    #[error("{registry}/{repo}: authentication: expected {expected}, found {found}")]
    Auth {
        registry: String,
        repo: String,
        expected: String,
        found: String,
    },

    /// The registry stored something other than what was sent.
    #[error("{registry}/{repo}: {what}: expected Docker-Content-Digest {expected}, the registry answered {found}")]
    DigestMismatch {
        registry: String,
        repo: String,
        what: String,
        expected: String,
        found: String,
    },

    /// A credentials file that cannot be read or parsed.
    #[error("credentials file {}: {problem}", path.display())]
    CredentialsFile { path: PathBuf, problem: String },

    /// A `docker-credential-<name>` helper that failed or answered nonsense.
    #[error("credential helper docker-credential-{helper} for {registry}: {problem}")]
    CredentialHelper {
        helper: String,
        registry: String,
        problem: String,
    },

    /// A blob of the image that is not where the image says.
    #[error("{registry}/{repo}: blob {digest}: the store file {} for it: {source}", path.display())]
    BlobFile {
        registry: String,
        repo: String,
        digest: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An image to pull whose manifest, index or config is not what it
    /// must be (digest, platform, media type, shape).
    #[error("image {image}: {what}: expected {expected}, found {found}")]
    Pull {
        image: String,
        what: String,
        expected: String,
        found: String,
    },

    /// The registry has no manifest by that tag or digest.
    #[error("{registry}/{repo}: the registry has no manifest {target} in repository {repo} (HTTP 404{})", detail_text(.detail))]
    UnknownManifest {
        registry: String,
        repo: String,
        target: String,
        detail: String,
    },

    /// A blob upload that failed again and again (each failure resumed
    /// where the registry's upload stood, or restarted); the last failure
    /// is the source.
    #[error("{registry}/{repo}: {what}: gave up after {failures} failed tries in {:.1} s (each resumed from what the registry held, or restarted; at most ENVBUILD_NET_RETRY_TIME)", .elapsed.as_secs_f64())]
    UploadGaveUp {
        registry: String,
        repo: String,
        what: String,
        failures: u32,
        elapsed: std::time::Duration,
        #[source]
        source: Box<RegistryError>,
    },

    /// A parallel upload stopped because another failed.
    #[error("{registry}/{repo}: an upload stopped after another upload failed")]
    Stopped { registry: String, repo: String },
}

fn shown_registry(text: &str) -> String {
    if text.contains('@') {
        "(user information given; not shown)".into()
    } else {
        format!("{text:?}")
    }
}

fn detail_text(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}
