//! Rebuilds the crate when a file of the web page changes, is added or removed: the files are
//! embedded by `rust-embed`, which cargo cannot see through on its own in a release build.

fn main() {
    println!("cargo:rerun-if-changed=web");
}
