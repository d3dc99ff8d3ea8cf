//! Configuration helpers for the clap-derived settings of both services.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A value that must never reach logs, error messages or `--help` output
/// (database URLs with passwords, webhook secrets). Use [`Secret::expose`]
/// at the one place that needs the real value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T: FromStr> FromStr for Secret<T> {
    type Err = T::Err;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// A clap value parser for secrets: like parsing with `FromStr`, but a
/// refused value is never echoed in the error (clap's own parsers print it).
/// Use as `value_parser = secret::<SecretSet>()`.
pub fn secret<T>() -> SecretParser<T> {
    SecretParser(std::marker::PhantomData)
}

/// See [`secret`].
#[derive(Debug)]
pub struct SecretParser<T>(std::marker::PhantomData<fn() -> T>);

impl<T> Clone for SecretParser<T> {
    fn clone(&self) -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T> clap::builder::TypedValueParser for SecretParser<T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: fmt::Display,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg.map(ToString::to_string).unwrap_or_else(|| "the secret".to_owned());
        let refuse = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {name} (not shown: it is a secret): {why}\n"),
            )
            .with_cmd(cmd)
        };
        let raw = value.to_str().ok_or_else(|| refuse("it is not UTF-8".to_owned()))?;
        raw.parse().map_err(|e: T::Err| refuse(e.to_string()))
    }
}

/// A setting's value that does not parse: the message says why, and what
/// would (clap shows it beside the flag's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// Parses `250ms`, `5s`, `10m`, `2h`... (for clap's `value_parser`).
pub fn parse_duration(raw: &str) -> Result<Duration, InvalidValue> {
    humantime::parse_duration(raw.trim())
        .map_err(|e| InvalidValue(format!("{raw:?} is not a duration like 500ms, 5s or 2h: {e}")))
}

/// `LOG_FORMAT`: human-readable lines for a terminal, or one JSON object per
/// line for a log pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_secret_does_not_print() {
        let secret: Secret<String> = "postgres://u:hunter2@db/x".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(secret.expose(), "postgres://u:hunter2@db/x");
    }
}
