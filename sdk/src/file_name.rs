//! The rule for the name of a file a bot sends to a folder or SFTP
//! destination, shared by the host (which refuses a reply that breaks it)
//! and bots (which can answer their own caller with the reason first).

/// Why `name` cannot be a file name in a destination's directory: it must
/// be one path segment of 1 to 255 bytes, not hidden (the host's temporary
/// files start with a dot), without control characters.
pub fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 255 {
        return Err("must be 1-255 bytes long");
    }
    if name.starts_with('.') {
        return Err("must not start with a dot");
    }
    if name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err("must be a single path segment without control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_file_name;

    #[test]
    fn one_plain_path_segment() {
        assert!(check_file_name("BF000000000042.dcm").is_ok());
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a\\b",
            "../x",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }
}
