//! The `sesame` command.

fn main() {}
