//! The configuration the README documents is the configuration the server reads: every
//! ```toml block of README.md loads through the real loader (`Settings::load`), and every
//! `MCPAUTH_…` variable it names is read by the real binary. A setting renamed or removed
//! without its documentation fails here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpauth_server::Settings;
use tokio::time::timeout;

use crate::common::mcpauth;

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The bodies of the ```toml blocks of `markdown`, with the line each starts on.
fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None if fence.starts_with("```toml") => open = Some((index + 1, String::new())),
            Some(_) if fence.starts_with("```") => blocks.extend(open.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    assert!(
        open.is_none(),
        "a ```toml block of the README is not closed"
    );
    blocks
}

/// Example configuration files kept in the repository besides the README (none today; a
/// `*.toml` under `examples/` or named `mcpauth*.toml` would be one).
fn example_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut found = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && !matches!(name.as_str(), "target" | "node_modules") {
                    dirs.push(path);
                }
            } else if name.ends_with(".toml")
                && (name.starts_with("mcpauth")
                    || path.components().any(|c| c.as_os_str() == "examples"))
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn every_toml_block_of_the_readme_loads() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = toml_blocks(&readme());
    // The Configuration example, [smtp], [[upstreams]], two identity providers, metrics_bind.
    assert!(
        blocks.len() >= 6,
        "found only {} ```toml blocks",
        blocks.len()
    );
    for (line, body) in blocks {
        let file = dir.path().join(format!("readme-{line}.toml"));
        std::fs::write(&file, &body).unwrap();
        if let Err(error) = Settings::load(Some(&file), Default::default()) {
            panic!("README.md line {line}: the ```toml block does not load: {error:#}\n{body}");
        }
    }
    for file in example_files() {
        if let Err(error) = Settings::load(Some(&file), Default::default()) {
            panic!("{} does not load: {error:#}", file.display());
        }
    }
}

/// The first README example, read back: its values arrive where the library reads them.
#[test]
fn the_readme_example_means_what_it_says() {
    let (_, body) = toml_blocks(&readme())
        .into_iter()
        .find(|(_, body)| body.contains("[[trusted_clients]]"))
        .expect("the Configuration example");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mcpauth.toml");
    std::fs::write(&file, body).unwrap();
    let settings = Settings::load(Some(&file), Default::default()).unwrap();
    assert_eq!(settings.bind, "0.0.0.0:3000");
    let options = settings.options("https://auth.example.com").unwrap();
    assert_eq!(options.access_token_expires_in, 1800);
    assert_eq!(options.rate_limits.sign_in_per_account, 5);
    assert_eq!(options.trusted_clients[0].client_id, "internal-dashboard");
}

/// Every `MCPAUTH_…` name the README gives (not the `MCPAUTH_<NAME>` / `MCPAUTH_IDP_<ID>_…`
/// patterns).
fn documented_variables(markdown: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("MCPAUTH_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let pattern = tail[end..].starts_with('<') || name.ends_with('_');
        if !pattern && !name.starts_with("MCPAUTH_IDP_") && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// `mcpauth migrate` with `name` set to a value no setting accepts (an array): it fails when
/// the binary reads `name`, and succeeds when the name is ignored.
async fn refused_with(name: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = timeout(
        Duration::from_secs(60),
        mcpauth(dir.path()).arg("migrate").env(name, "[1]").output(),
    )
    .await
    .unwrap()
    .unwrap();
    (
        !output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn every_environment_variable_of_the_readme_is_read() {
    let names = documented_variables(&readme());
    for expected in [
        "MCPAUTH_RATE_LIMITS__ENABLED",
        "MCPAUTH_SMTP__PASSWORD",
        "MCPAUTH_DATABASE_URL",
        "MCPAUTH_DATABASE__MAX_CONNECTIONS",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for name in &names {
        let (refused, stderr) = refused_with(name).await;
        assert!(refused, "{name} is documented but not read");
        // `MCPAUTH_CONFIG` names the file itself (`--config`): a file that is not there.
        let read = if name == "MCPAUTH_CONFIG" {
            stderr.contains("configuration file [1] does not exist")
        } else {
            stderr.contains("invalid configuration")
        };
        assert!(read, "{name}: {stderr}");
    }
    // The control: a name that is no setting is ignored, so the check above can fail.
    let (refused, stderr) = refused_with("MCPAUTH_NO_SUCH_SETTING").await;
    assert!(!refused, "{stderr}");
}
