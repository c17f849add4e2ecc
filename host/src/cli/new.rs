//! `interlink new NAME`: scaffolds a bot crate that builds as it is, with a
//! README and a sample fixture. Until the SDK is published the crate depends
//! on the SDK's source by path: `--sdk PATH`, else the checkout the crate is
//! created in, else the checkout this binary was built from.

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

const LIB_RS: &str = r#"//! {{name}}: an Interlink bot.

use interlink_sdk::prelude::*;

struct Bot_;

impl Bot for Bot_ {
    fn manifest() -> Manifest {
        Manifest::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .description("Answers every ADT message with a log line and forwards it")
            .subscribe(Subscription::hl7(["ADT^*"]))
    }

    fn handle(event: Event) -> Result<Reply, BotError> {
        let Event::Hl7(input) = event else {
            return Ok(Reply::default());
        };
        let msg = Message::parse(&input.raw)?;
        // Log ids that are not patient data (message type, control id),
        // never PID fields: the host log is read by people who may not see them.
        host::info(&format!(
            "{} {} forwarded",
            msg.message_type(),
            msg.control_id()
        ));
        let destination = host::config("destination").unwrap_or_else(|| "outbox".into());
        Ok(Reply::default().send(&destination, msg.encode()))
    }
}

export_bot!(Bot_);
"#;

const README: &str = r#"# {{name}}

An Interlink bot.

```sh
rustup target add wasm32-wasip2                         # once
cargo build --release --target wasm32-wasip2
interlink test target/wasm32-wasip2/release/{{crate}}.wasm fixtures/adt_a04.hl7
cp target/wasm32-wasip2/release/{{crate}}.wasm /path/to/interlink/plugins/
```

`interlink test` runs the bot offline and prints its log lines and the
messages it would send. Copying the `.wasm` into a running host's plugins
directory deploys it; copying a new build over it upgrades it.
"#;

const FIXTURE: &str = "MSH|^~\\&|REG|CLINIC|INTERLINK|BF|20260101120000||ADT^A04^ADT_A01|MSG0001|P|2.5.1\r\
EVN|A04|20260101120000\r\
PID|1||MRN0001^^^CLINIC^MR||DOE^JANE||19800101|F\r\
PV1|1|O|CLINIC^^^BF\r";

/// The repository root if `dir` is inside a checkout of it.
fn repo_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| is_sdk(&d.join("sdk")))
        .map(Path::to_path_buf)
}

/// `to` relative to `from` (both absolute).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Whether `dir` holds the SDK's source.
fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|t| t.contains("name = \"interlink-sdk\""))
}

/// Where the SDK's source is: `explicit`, the checkout `crate_dir` is in,
/// or the checkout this binary was built from.
fn sdk_source(explicit: Option<&Path>, crate_dir: &Path) -> Result<PathBuf> {
    if let Some(path) = explicit {
        let path = path
            .canonicalize()
            .with_context(|| format!("--sdk {}", path.display()))?;
        if !is_sdk(&path) {
            bail!(
                "--sdk {}: not the interlink SDK (no Cargo.toml of the `interlink-sdk` package there)",
                path.display()
            );
        }
        return Ok(path);
    }
    if let Some(repo) = repo_root(crate_dir) {
        return Ok(repo.join("sdk"));
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    match built_from.canonicalize() {
        Ok(path) if is_sdk(&path) => Ok(path),
        _ => bail!(
            "cannot find the interlink SDK source (this binary was built from {}, which is gone): \
             pass --sdk PATH, the sdk/ folder of an Interlink checkout",
            env!("CARGO_MANIFEST_DIR")
        ),
    }
}

/// Creates the crate `name` in `dir`, depending on the SDK at `sdk` (see
/// [`sdk_source`]).
pub fn scaffold(name: &str, dir: &Path, sdk: Option<&Path>) -> Result<ExitCode> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        bail!(
            "bot name {name:?}: use lowercase letters, digits, '-' or '_', starting with a letter"
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let parent = dir.canonicalize()?;
    let root = parent.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let sdk = sdk_source(sdk, &parent)?;
    // Inside the SDK's own checkout the path is relative, so the checkout
    // can move; elsewhere it is absolute.
    let sdk_path = match repo_root(&parent) {
        Some(repo) if sdk.starts_with(&repo) => relative(&root, &sdk),
        _ => sdk,
    };
    let sdk = format!(
        "{{ path = \"{}\" }}",
        sdk_path.display().to_string().replace('\\', "/")
    );
    let crate_name = name.replace('-', "_");
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
    };
    let cargo = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\ninterlink-sdk = {sdk}\n\n\
         [profile.release]\nopt-level = \"s\"\nstrip = \"debuginfo\"\n\n\
         # A crate of its own, even inside another workspace.\n[workspace]\n"
    );
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::create_dir_all(root.join("fixtures"))?;
    std::fs::write(root.join("Cargo.toml"), cargo)?;
    std::fs::write(root.join("src/lib.rs"), fill(LIB_RS))?;
    std::fs::write(root.join("README.md"), fill(README))?;
    std::fs::write(root.join("fixtures/adt_a04.hl7"), FIXTURE)?;
    std::fs::write(root.join(".gitignore"), "/target\n")?;
    println!("created bot crate {}", root.display());
    println!(
        "next: cd {} && cargo build --release --target wasm32-wasip2",
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a/sdk")),
            Path::new("../../sdk")
        );
        assert_eq!(
            relative(Path::new("/a"), Path::new("/a/sdk")),
            Path::new("sdk")
        );
    }
}
