//! `groundhog new <name>`: a crate of one's own with a working scenario, its binary and a seeded
//! test, that builds outside this workspace with nothing but what it writes.

use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("../template/Cargo.toml.in");
const CONFIG_TOML: &str = include_str!("../template/config.toml.in");
const LIB_RS: &str = include_str!("../template/lib.rs.in");
const MAIN_RS: &str = include_str!("../template/main.rs.in");
const TEST_RS: &str = include_str!("../template/test.rs.in");
/// The lockfile Groundhog was built and tested with: the new crate starts on the same versions
/// (cargo drops the entries it does not need).
const CARGO_LOCK: &str = include_str!("../../Cargo.lock");

/// The checkout this binary was built from: where the new crate's path dependencies point.
pub(crate) fn default_groundhog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Writes the crate `name` into `dir` (which must not exist), depending on the Groundhog checkout
/// at `groundhog`. Returns the files written.
pub(crate) fn create(dir: &Path, name: &str, groundhog: &Path) -> Result<Vec<PathBuf>, String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "bad name `{name}`: use lowercase letters, digits and dashes, starting with a letter"
        ));
    }
    if dir.exists() {
        return Err(format!(
            "{} already exists; nothing was written",
            dir.display()
        ));
    }
    if !groundhog.join("sim").join("Cargo.toml").is_file() {
        return Err(format!(
            "{} is not a Groundhog checkout (no sim/Cargo.toml); pass --groundhog DIR",
            groundhog.display()
        ));
    }
    let groundhog = groundhog
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", groundhog.display()))?;
    let crate_ident = name.replace('-', "_");
    let type_name: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let fill = |text: &str| {
        text.replace("{{crate}}", name)
            .replace("{{crate_ident}}", &crate_ident)
            .replace("{{name}}", name)
            .replace("{{type}}", &type_name)
            .replace("{{groundhog}}", &groundhog.display().to_string())
    };
    let files = [
        ("Cargo.toml", CARGO_TOML),
        (".cargo/config.toml", CONFIG_TOML),
        ("src/lib.rs", LIB_RS),
        ("src/main.rs", MAIN_RS),
        ("tests/scenario.rs", TEST_RS),
        ("Cargo.lock", CARGO_LOCK),
    ];
    let mut written = Vec::new();
    for (path, text) in files {
        let path = dir.join(path);
        let parent = path.parent().expect("every template file is in a folder");
        std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&path, fill(text)))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
