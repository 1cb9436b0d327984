//! The cluster's shared secret, as the node's flags give it, and the network counters.
//!
//! Everything the binary needs of authentication goes through this file: loading the secret
//! (`--secret-env VAR` or `--secret-file PATH`), putting it in the node's configuration, and
//! reading how many datagrams the node rejected.
//!
//! The runtime does not authenticate yet. Until it does, [`Secret`] is this file's own
//! stand-in with the runtime's announced rules (at least [`MIN_LEN`] bytes), [`configure`]
//! leaves the configuration as it is, and [`rejected`] has no counter to read (`None`).

use std::path::Path;

use groundhog_runtime::{Node, NodeConfig};

/// The shortest secret accepted.
pub(crate) const MIN_LEN: usize = 16;

/// A shared secret, checked for length.
pub(crate) struct Secret {
    _bytes: Vec<u8>,
}

impl Secret {
    fn new(bytes: impl AsRef<[u8]>) -> Result<Secret, String> {
        let bytes = bytes.as_ref();
        if bytes.len() < MIN_LEN {
            return Err(format!(
                "the secret is {} bytes; it must be at least {MIN_LEN}",
                bytes.len()
            ));
        }
        Ok(Secret {
            _bytes: bytes.to_vec(),
        })
    }
}

/// The secret in environment variable `var`.
pub(crate) fn from_env(var: &str) -> Result<Secret, String> {
    match std::env::var_os(var) {
        Some(value) => {
            Secret::new(value.as_encoded_bytes()).map_err(|e| format!("--secret-env {var}: {e}"))
        }
        None => Err(format!("--secret-env {var}: the variable is not set")),
    }
}

/// The secret in the file at `path`, without one trailing newline (`\n` or `\r\n`), so a file
/// written by `echo` holds the same secret as the variable it was echoed from.
pub(crate) fn from_file(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let mut bytes =
        std::fs::read(path).map_err(|e| format!("--secret-file {shown}: cannot read it: {e}"))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Secret::new(bytes).map_err(|e| format!("--secret-file {shown}: {e}"))
}

/// The node's configuration with the secret in it.
pub(crate) fn configure(config: NodeConfig, secret: Secret) -> NodeConfig {
    let _ = secret;
    config
}

/// How many datagrams the node dropped as unauthenticated or badly signed, if it counts them.
pub(crate) fn rejected(node: &Node) -> Option<u64> {
    let _ = node;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_secret_is_refused_and_says_why() {
        let err = Secret::new(b"short").err().unwrap();
        assert_eq!(err, "the secret is 5 bytes; it must be at least 16");
        assert!(Secret::new([7u8; MIN_LEN]).is_ok());
    }

    #[test]
    fn a_secret_file_loses_one_trailing_newline() {
        let dir =
            std::env::temp_dir().join(format!("groundhog-node-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        // 15 bytes and a newline: too short once the newline is dropped.
        std::fs::write(&file, b"fifteen-bytes!!\n").unwrap();
        let err = from_file(&file).err().unwrap();
        assert!(
            err.ends_with("the secret is 15 bytes; it must be at least 16"),
            "{err}"
        );
        std::fs::write(&file, b"sixteen-bytes!!!\r\n").unwrap();
        assert!(from_file(&file).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
        let err = from_file(&dir.join("secret")).err().unwrap();
        assert!(err.contains("cannot read it"), "{err}");
    }
}
