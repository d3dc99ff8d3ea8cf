use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the services allocate small,
/// short-lived buffers per request, where glibc's allocator showed at the
/// top of a profile under load; it costs some idle memory. The `mimalloc`
/// feature (on by default) switches it; docs/bench/history.md has the measurements.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    hookline_kit::service::main::<helpdesk::Application>().await
}
