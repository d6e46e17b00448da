//! Process-wide allocator settings of the node binary.
//!
//! glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), so
//! after the first password hash (argon2: one 19 MiB block) every later one is carved from the
//! heap of whichever thread ran it, and a node that checked a few hundred passwords kept about
//! 1 GiB resident. A fixed threshold keeps large blocks mapped and returns them on free.
//!
//! Not here: a different allocator; other platforms keep their defaults.

/// Blocks this large or larger are mapped on their own and returned to the system when freed.
pub const MMAP_THRESHOLD_BYTES: i32 = 4 << 20;

/// Applies the settings; call first thing in `main`.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other work.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}
