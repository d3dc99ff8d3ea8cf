//! Who signs a case's callback: the tenant whose key created the case.
//!
//! A receiver believes a callback because of the secret it was signed
//! with, so that secret must say whose case it is. With one secret for
//! every tenant, any key holder could have a case of its own delivered to
//! another client's callback URL, correctly signed, and the receiver could
//! not tell it from its own. So each tenant named by `HELPDESK_API_KEYS`
//! (`acme:key…`) signs with its own secrets (`TENANT_SECRETS`,
//! `acme=whsec_…`), and its receivers hold only those.
//!
//! The default tenant (keys without a name, and every request to an open
//! help desk) signs with `WEBHOOK_SECRET`, as before, so the tutorial's
//! flow is unchanged. When signing is on (either setting set), a named
//! tenant without a secret of its own stops the help desk at start-up: it
//! never falls back to `WEBHOOK_SECRET`, which would hand its receivers'
//! trust to the default tenant's key holders. A worker that meets a case of
//! a tenant it holds no secret for (a worker started without the keys)
//! fails that attempt, and retries it on the schedule, rather than send it
//! signed with another's secret.
//!
//! A tenant may have several secrets at once while it rotates: each signs
//! every callback (one `v1,` signature per secret), so its receiver accepts
//! with the old secret or the new one, the same way a subscription's old
//! and new secrets both sign during `SECRET_OVERLAP`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use hookline_contract::signature::{SecretError, SecretSet, WebhookSecret};
use hookline_kit::auth::{ApiKeys, DEFAULT_TENANT};

/// `TENANT_SECRETS`: each named tenant's secret(s), `tenant=whsec_…`,
/// comma-separated; a tenant named twice signs with both (a rotation).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TenantSecrets(BTreeMap<String, SecretSet>);

/// Why `TENANT_SECRETS` was refused (the secrets themselves are never shown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantSecretsError {
    #[error(
        "entry {position} is not tenant=whsec_... (the tenant as HELPDESK_API_KEYS names it: 1-64 of a-z, 0-9, - and _)"
    )]
    NoTenant { position: usize },
    #[error(
        "entry {position} names the default tenant, whose secret is WEBHOOK_SECRET; TENANT_SECRETS is for the tenants HELPDESK_API_KEYS names"
    )]
    DefaultTenant { position: usize },
    #[error("entry {position}: {source}")]
    Secret { position: usize, source: SecretError },
}

impl TenantSecrets {
    /// No tenant has a secret of its own.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tenants that have secrets, in order.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    fn of(&self, tenant: &str) -> Option<&SecretSet> {
        self.0.get(tenant)
    }
}

impl FromStr for TenantSecrets {
    type Err = TenantSecretsError;

    /// Blanks around entries and empty entries are ignored, so an empty
    /// string is no tenant secrets at all.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut secrets: BTreeMap<String, Vec<WebhookSecret>> = BTreeMap::new();
        for (index, entry) in raw.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let position = index + 1;
            // The first `=` ends the name: a base64 secret may end in `=`.
            let Some((tenant, secret)) = entry.split_once('=') else {
                return Err(TenantSecretsError::NoTenant { position });
            };
            let (tenant, secret) = (tenant.trim(), secret.trim());
            // A name as HELPDESK_API_KEYS writes it; a secret alone (its
            // base64 may hold a `=`) is no name.
            let named = (1..=64).contains(&tenant.len())
                && tenant
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !named || secret.is_empty() {
                return Err(TenantSecretsError::NoTenant { position });
            }
            if tenant == DEFAULT_TENANT {
                return Err(TenantSecretsError::DefaultTenant { position });
            }
            let secret = secret
                .parse()
                .map_err(|source| TenantSecretsError::Secret { position, source })?;
            secrets.entry(tenant.to_owned()).or_default().push(secret);
        }
        // A tenant is only listed with a secret, so no set is empty.
        let sets = secrets
            .into_iter()
            .filter_map(|(tenant, list)| SecretSet::new(list).ok().map(|set| (tenant, set)));
        Ok(Self(sets.collect()))
    }
}

impl fmt::Debug for TenantSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// The secrets that sign callbacks, by tenant.
#[derive(Debug, Clone, Default)]
pub struct CallbackSigning {
    /// `WEBHOOK_SECRET`: the default tenant's.
    default: Option<SecretSet>,
    /// `TENANT_SECRETS`: each named tenant's.
    tenants: TenantSecrets,
}

/// A named tenant without a secret of its own while signing is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant {tenant:?} has no secret of its own: its callbacks are signed only with TENANT_SECRETS, never with WEBHOOK_SECRET (the default tenant's); add {tenant}=whsec_... to TENANT_SECRETS"
)]
pub struct MissingSecret {
    pub tenant: String,
}

impl CallbackSigning {
    /// Signing from `WEBHOOK_SECRET` and `TENANT_SECRETS`, checked against
    /// the tenants `keys` name: with signing on, each must have a secret.
    pub fn new(default: Option<SecretSet>, tenants: TenantSecrets, keys: &ApiKeys) -> Result<Self, MissingSecret> {
        let signing = Self { default, tenants };
        for tenant in keys.tenants() {
            signing.secrets_for(tenant)?;
        }
        Ok(signing)
    }

    /// Whether callbacks are signed at all (either setting set); if not,
    /// every callback goes out unsigned, as the tutorial's help desk sends
    /// them.
    pub fn is_on(&self) -> bool {
        self.default.is_some() || !self.tenants.is_empty()
    }

    /// The secrets that sign a callback of `tenant`'s case: its own, the
    /// default tenant's `WEBHOOK_SECRET`, or none when signing is off.
    pub fn secrets_for(&self, tenant: &str) -> Result<Option<&SecretSet>, MissingSecret> {
        if tenant == DEFAULT_TENANT {
            return Ok(self.default.as_ref());
        }
        match self.tenants.of(tenant) {
            Some(own) => Ok(Some(own)),
            None if !self.is_on() => Ok(None),
            None => Err(MissingSecret {
                tenant: tenant.to_owned(),
            }),
        }
    }

    /// The tenants with secrets of their own, for the start-up log line.
    pub fn tenants(&self) -> Vec<&str> {
        self.tenants.tenants().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACME: &str = "whsec_YWNtZS1zZWNyZXQtb2YtdHdlbnR5LWZvdXItYnl0ZXM=";
    const ACME_NEW: &str = "whsec_YWNtZS1uZXctc2VjcmV0LW9mLTI0LWJ5dGVzLW9r";
    const GLOBEX: &str = "whsec_Z2xvYmV4LXNlY3JldC1vZi0yNC1ieXRlcy1vaw==";
    const DEFAULT: &str = "whsec_ZGVmYXVsdC1zZWNyZXQtb2YtMjQtYnl0ZXMtb2s=";

    fn keys(raw: &str) -> ApiKeys {
        raw.parse().unwrap()
    }

    fn signed(set: Option<&SecretSet>) -> Option<String> {
        set.map(|set| set.sign("msg_1", 1, b"{}"))
    }

    fn set(raw: &str) -> SecretSet {
        raw.parse().unwrap()
    }

    #[test]
    fn each_tenant_signs_with_its_own_secrets_and_the_default_one_with_webhook_secret() {
        let tenants: TenantSecrets = format!(" acme={ACME}, globex = {GLOBEX},acme={ACME_NEW} ,")
            .parse()
            .unwrap();
        assert_eq!(tenants.tenants().collect::<Vec<_>>(), ["acme", "globex"]);
        let keys = keys("acme:0123456789abcdef-acme,globex:0123456789abcdef-globex,0123456789abcdef-bare");
        let signing = CallbackSigning::new(Some(set(DEFAULT)), tenants, &keys).unwrap();
        let both = set(&format!("{ACME},{ACME_NEW}"));
        assert_eq!(signed(signing.secrets_for("acme").unwrap()), signed(Some(&both)));
        assert_eq!(
            signed(signing.secrets_for("globex").unwrap()),
            signed(Some(&set(GLOBEX)))
        );
        assert_eq!(
            signed(signing.secrets_for(DEFAULT_TENANT).unwrap()),
            signed(Some(&set(DEFAULT)))
        );
        assert!(!format!("{tenants:?}", tenants = signing.tenants).contains("YWNt"));
    }

    #[test]
    fn a_named_tenant_without_a_secret_stops_the_start_and_never_borrows_webhook_secret() {
        let keys = keys("acme:0123456789abcdef-acme,globex:0123456789abcdef-globex");
        let tenants: TenantSecrets = format!("acme={ACME}").parse().unwrap();
        let error = CallbackSigning::new(Some(set(DEFAULT)), tenants.clone(), &keys).unwrap_err();
        assert_eq!(error.tenant, "globex");
        assert!(error.to_string().contains("globex=whsec_"), "{error}");
        // Only WEBHOOK_SECRET set: signing is on, and acme has none of its own.
        let error = CallbackSigning::new(Some(set(DEFAULT)), TenantSecrets::default(), &keys).unwrap_err();
        assert_eq!(error.tenant, "acme");
        // A worker without the keys meets such a case at delivery instead.
        let signing = CallbackSigning::new(Some(set(DEFAULT)), tenants, &ApiKeys::default()).unwrap();
        assert_eq!(signing.secrets_for("globex").unwrap_err().tenant, "globex");
    }

    #[test]
    fn with_no_secret_at_all_every_callback_goes_out_unsigned_as_before() {
        let keys = keys("acme:0123456789abcdef-acme");
        let signing = CallbackSigning::new(None, TenantSecrets::default(), &keys).unwrap();
        assert!(!signing.is_on());
        assert_eq!(signing.secrets_for("acme"), Ok(None));
        assert_eq!(signing.secrets_for(DEFAULT_TENANT), Ok(None));
    }

    #[test]
    fn malformed_entries_are_refused_by_position_without_showing_the_secret() {
        assert!("".parse::<TenantSecrets>().unwrap().is_empty());
        assert_eq!(
            ACME.parse::<TenantSecrets>().unwrap_err(),
            TenantSecretsError::NoTenant { position: 1 }
        );
        assert_eq!(
            format!("acme={ACME},={GLOBEX}").parse::<TenantSecrets>().unwrap_err(),
            TenantSecretsError::NoTenant { position: 2 }
        );
        assert_eq!(
            format!("default={ACME}").parse::<TenantSecrets>().unwrap_err(),
            TenantSecretsError::DefaultTenant { position: 1 }
        );
        let error = "acme=whsec_c2hvcnQ=".parse::<TenantSecrets>().unwrap_err();
        assert!(
            matches!(error, TenantSecretsError::Secret { position: 1, .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains("c2hvcnQ"), "{error}");
    }
}
