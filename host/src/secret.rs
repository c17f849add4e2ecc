//! Secrets named by the configuration but never written in it: read from an
//! environment variable or from the first line of a file.

use std::path::Path;

use anyhow::{Context, Result};

/// The value of the environment variable `var`.
pub fn from_env(var: &str) -> Result<String> {
    std::env::var(var).with_context(|| format!("environment variable {var} is not set"))
}

/// The first line of `file`.
pub fn from_file(file: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(text.lines().next().unwrap_or("").trim_end().to_string())
}
