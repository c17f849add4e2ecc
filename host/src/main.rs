//! The `interlink` command.

fn main() -> std::process::ExitCode {
    interlink::cli::main()
}
