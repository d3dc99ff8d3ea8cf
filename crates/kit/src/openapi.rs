//! Keeping a committed OpenAPI document in step with the code that serves
//! it, and the parts both services' documents share.

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The `api_key` security scheme a service's private routes name
/// (`security(("api_key" = []))`); `setting` is where its keys come from.
pub struct ApiKeyScheme {
    pub setting: &'static str,
}

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(format!(
                "One of {}. Needed only when that is set; without it every route is open.",
                self.setting
            )))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// Why a committed document is not the one the code generates.
#[derive(Debug, thiserror::Error)]
pub enum Drift {
    #[error("cannot encode the generated document")]
    Encode(#[from] serde_json::Error),
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is out of date: run UPDATE_OPENAPI=1 cargo test openapi")]
    Stale { path: String },
}

/// Compares `document` with the committed copy at `path`, as pretty JSON.
/// With `UPDATE_OPENAPI` set in the environment it rewrites the copy first,
/// so `UPDATE_OPENAPI=1 cargo test openapi` refreshes every document.
/// Errors say which file drifted and how to refresh it.
pub fn check_committed(document: &serde_json::Value, path: &str) -> Result<(), Drift> {
    let generated = serde_json::to_string_pretty(document)? + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).map_err(|source| Drift::Write {
            path: path.to_owned(),
            source,
        })?;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == generated {
        Ok(())
    } else {
        Err(Drift::Stale { path: path.to_owned() })
    }
}
