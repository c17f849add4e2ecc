//! A WASI command, not a bot: `interlink check` must say why it is refused.

fn main() {
    println!("hello");
}
