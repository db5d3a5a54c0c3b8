//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds
//! `migrations/` at compile time, and cargo does not watch that folder by
//! itself (a new or edited migration would otherwise not reach the binary
//! until some source file changed).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
