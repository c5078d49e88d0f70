//! Giving freed memory back to the OS.
//!
//! Two allocators hold memory the process no longer uses: mimalloc (everything Rust allocates)
//! keeps freed pages to reuse them, and glibc's malloc (what SQLite allocates its page caches
//! with) keeps freed chunks in its arenas. [`configure`] makes mimalloc return pages as soon as
//! they are free instead of a second later (mimalloc v3's default; a delayed return only happens
//! when the thread that freed them allocates again, so an idle node kept them). When the node has been
//! idle for a while its stores drop their caches (`sluice_server::idle`), then [`give_back`]
//! asks both allocators to return what is free.
//!
//! This is the only place the workspace allows `unsafe`: calls into C that take no pointers.

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (include/mimalloc.h of the
/// libmimalloc-sys version pinned in Cargo.lock); libmimalloc-sys names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc to return free pages at once, unless the operator chose a delay with
/// mimalloc's own `MIMALLOC_PURGE_DELAY`. Called first thing in `main`.
#[allow(unsafe_code)]
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` takes two integers; options may be set at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Returns free memory of both allocators to the OS.
#[allow(unsafe_code)]
pub fn give_back() {
    // SAFETY: `mi_collect` takes a plain flag and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a plain size and locks each arena while it trims it; it is
    // safe to call from any thread, concurrently with allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn purge_delay() -> std::ffi::c_long {
        // SAFETY: reads an option, as above.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // mimalloc v3's default purge delay is 1,000 ms (options.c): the constant names that
        // option.
        assert_eq!(purge_delay(), 1000);
        configure();
        assert_eq!(purge_delay(), 0);
        give_back();
    }
}
