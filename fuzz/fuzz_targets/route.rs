//! `--forward` values (`URL`, `PATTERN=URL`, `3000`, `host:port/path`):
//! whatever a user types gives a route or an error message, never a panic,
//! and a route always targets an absolute http(s) URL with a host.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../cli/src/glob.rs"]
mod glob;
#[allow(dead_code)]
#[path = "../../cli/src/listen/route.rs"]
mod route;

use route::Route;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    // The event type to match comes after the first NUL, if any.
    let (value, event_type) = value.split_once('\0').unwrap_or((value, "ping"));
    if let Ok(route) = Route::parse(value) {
        assert!(matches!(route.url.scheme(), "http" | "https"), "{value:?}");
        assert!(
            route.url.host_str().is_some_and(|h| !h.is_empty()),
            "{value:?}"
        );
        let _ = route.matches(event_type);
        if route.pattern.is_none() {
            assert!(route.matches(event_type));
        }
    }
});
