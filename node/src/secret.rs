//! The cluster's shared secret, as the node's flags give it, and the network counters.
//!
//! Everything the binary needs of authentication goes through this file: loading the secret
//! (`--secret-env VAR` or `--secret-file PATH`) as the runtime's [`Secret`] (at least
//! [`MIN_SECRET`](groundhog_runtime::auth::MIN_SECRET) bytes), putting it in the node's configuration, and reading how many
//! datagrams the node rejected ([`Node::net_stats`]).

use std::path::Path;

use groundhog_runtime::{Node, NodeConfig, Secret, SecretError};

/// The secret in environment variable `var`.
pub(crate) fn from_env(var: &str) -> Result<Secret, String> {
    Secret::from_env(var).map_err(|e| match e {
        SecretError::Missing(_) => format!("--secret-env {var}: the variable is not set"),
        other => format!("--secret-env {var}: {other}"),
    })
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
    config.secret(secret)
}

/// How many datagrams the node dropped as unauthenticated or badly signed.
pub(crate) fn rejected(node: &Node) -> u64 {
    node.net_stats().rejected
}

#[cfg(test)]
mod tests {
    use super::*;
    use groundhog_runtime::auth::MIN_SECRET;

    #[test]
    fn a_secret_file_loses_one_trailing_newline() {
        let dir =
            std::env::temp_dir().join(format!("groundhog-node-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        // One byte short and a newline: too short once the newline is dropped.
        let short = vec![b'x'; MIN_SECRET - 1];
        std::fs::write(&file, [&short[..], b"\n"].concat()).unwrap();
        let err = from_file(&file).err().unwrap();
        let expected = SecretError::TooShort(MIN_SECRET - 1).to_string();
        assert!(err.ends_with(&expected), "{err}");
        std::fs::write(&file, [&short[..], b"y\r\n"].concat()).unwrap();
        let read = from_file(&file).unwrap();
        let mut exact = short.clone();
        exact.push(b'y');
        assert!(
            read == Secret::new(&exact).unwrap(),
            "the newline is not part of it"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let err = from_file(&dir.join("secret")).err().unwrap();
        assert!(err.contains("cannot read it"), "{err}");
    }
}
