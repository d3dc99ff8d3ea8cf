//! Keeping a committed OpenAPI document in step with the code that serves it.

/// Compares `document` with the committed copy at `path`, as pretty JSON.
/// With `UPDATE_OPENAPI` set in the environment it rewrites the copy first,
/// so `UPDATE_OPENAPI=1 cargo test openapi` refreshes every document.
/// Errors say which file drifted and how to refresh it.
pub fn check_committed(document: &serde_json::Value, path: &str) -> Result<(), String> {
    let generated = serde_json::to_string_pretty(document).map_err(|e| e.to_string())? + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == generated {
        Ok(())
    } else {
        Err(format!(
            "{path} is out of date: run UPDATE_OPENAPI=1 cargo test openapi"
        ))
    }
}
