//! The key layout: every key of one partition starts with its tag
//! (`{prefix}` or `{prefix:k}`), which is also its Redis Cluster hash tag.
//! `docs/store.md` has the table of what each key holds; the Lua side names
//! the same keys in `prelude.lua`.

use hookline_kit::auth::{Authorized, DEFAULT_TENANT};

use crate::endpoint::Endpoint;

/// Whose objects a read sees: every tenant's (the operator's key, or an
/// open help desk) or one tenant's. Another tenant's object is as if it did
/// not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    All,
    Tenant(&'a str),
}

impl<'a> Scope<'a> {
    /// The scope of a request: all for the operator, else its tenant's.
    pub fn of(auth: &'a Authorized) -> Self {
        if auth.is_operator() {
            Self::All
        } else {
            Self::Tenant(auth.tenant())
        }
    }

    /// Whether an object of `tenant` is in scope.
    pub fn sees(self, tenant: &str) -> bool {
        match self {
            Self::All => true,
            Self::Tenant(own) => own == tenant,
        }
    }

    /// The tenant whose own lists this scope reads (`None`: the shared
    /// ones, which hold every tenant's). The default tenant has no lists of
    /// its own: its key is the operator's.
    fn own_lists(self) -> Option<&'a str> {
        match self {
            Self::Tenant(tenant) if tenant != DEFAULT_TENANT => Some(tenant),
            _ => None,
        }
    }
}

/// What starts the id of an event's job (never a documentId's character).
pub const EVENT_JOB_MARK: char = '~';

/// The key names of one partition.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
}

impl Keys {
    /// The keys under the tag `{tag}`.
    pub fn new(tag: &str) -> Self {
        Self {
            tag: format!("{{{tag}}}"),
        }
    }

    /// `{prefix}`: the start of every key, and their Redis Cluster hash tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// One of a tenant's own keys (`{p}:tenant:<name>:<what>`); a tenant
    /// name has no `:`, so they never collide.
    fn tenant(&self, tenant: &str, what: &str) -> String {
        format!("{}:tenant:{tenant}:{what}", self.tag)
    }

    /// The tenants with keys of their own (for the trim to find them).
    pub fn tenants(&self) -> String {
        format!("{}:tenants", self.tag)
    }

    /// `list` (`cases`, `dead`, `endpoints`, `chaos`) as `scope` sees it:
    /// the shared one, or the tenant's own.
    fn scoped(&self, scope: Scope<'_>, list: &str) -> String {
        match scope.own_lists() {
            None => format!("{}:{list}", self.tag),
            Some(tenant) => self.tenant(tenant, list),
        }
    }

    /// The cases `scope` lists, by creation time.
    pub fn cases_of(&self, scope: Scope<'_>) -> String {
        self.scoped(scope, "cases")
    }

    /// The dead letters `scope` lists.
    pub fn dead_of(&self, scope: Scope<'_>) -> String {
        self.scoped(scope, "dead")
    }

    /// The endpoints `scope` lists, by last activity (a tenant's: of its jobs).
    pub fn endpoints_of(&self, scope: Scope<'_>) -> String {
        self.scoped(scope, "endpoints")
    }

    /// The chaos tally `scope` sees.
    pub fn chaos_of(&self, scope: Scope<'_>) -> String {
        self.scoped(scope, "chaos")
    }

    pub fn case(&self, document_id: &str) -> String {
        format!("{}:case:{document_id}", self.tag)
    }

    /// The hash of a job: a case (its callback; the id is the documentId)
    /// or one event for one subscription (the id is `~` and its webhook-id).
    pub fn job(&self, id: &str) -> String {
        match id.strip_prefix(EVENT_JOB_MARK) {
            Some(webhook_id) => format!("{}:event:{webhook_id}", self.tag),
            None => self.case(id),
        }
    }

    pub fn subscription(&self, id: &str) -> String {
        format!("{}:sub:{id}", self.tag)
    }

    /// A tenant's subscriptions, scored by creation time.
    pub fn subscriptions(&self, tenant: &str) -> String {
        format!("{}:subs:{tenant}", self.tag)
    }

    /// The ids of every disabled subscription (for the gauge; the scripts
    /// that disable and enable keep it).
    pub fn disabled_subscriptions(&self) -> String {
        format!("{}:subs-disabled", self.tag)
    }

    /// The waiting jobs of one endpoint.
    pub fn due(&self, endpoint: &Endpoint) -> String {
        format!("{}:due:{endpoint}", self.tag)
    }

    /// The line of endpoints that have something due.
    pub fn ready(&self) -> String {
        format!("{}:ready", self.tag)
    }

    pub fn endpoint(&self, endpoint: &Endpoint) -> String {
        format!("{}:endpoint:{endpoint}", self.tag)
    }

    /// Every endpoint, by last activity.
    pub fn endpoints(&self) -> String {
        format!("{}:endpoints", self.tag)
    }

    pub fn inflight(&self) -> String {
        format!("{}:inflight", self.tag)
    }

    /// A recovery's progress (`store/recovery.rs`; partition 0's tag).
    pub fn recovery(&self, id: &str) -> String {
        format!("{}:recovery:{id}", self.tag)
    }

    pub fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }

    pub fn chaos(&self) -> String {
        format!("{}:chaos", self.tag)
    }

    pub fn cases(&self) -> String {
        format!("{}:cases", self.tag)
    }

    pub fn attempts(&self, document_id: &str) -> String {
        format!("{}:attempts:{document_id}", self.tag)
    }

    /// Which case a request `id` of `tenant` created (for idempotent
    /// retries): each tenant's ids are its own, so another tenant reusing
    /// one makes a case of its own. The default tenant's keep their key
    /// from before tenants.
    pub fn request(&self, tenant: &str, id: &str) -> String {
        match Scope::Tenant(tenant).own_lists() {
            None => format!("{}:request:{id}", self.tag),
            Some(tenant) => self.tenant(tenant, &format!("request:{id}")),
        }
    }

    /// Finished cases, scored by when they expire (`CASE_RETENTION`).
    pub fn expiring(&self) -> String {
        format!("{}:expiring", self.tag)
    }

    /// The partition's anchor: always there, named first by every script
    /// (see `prelude.lua`); holds the partition's number.
    pub fn anchor(&self) -> String {
        format!("{}:partition", self.tag)
    }

    /// The single due set of the layout before per-endpoint queues (see
    /// [`StoreError::OldLayout`](super::StoreError::OldLayout)).
    pub fn legacy_due(&self) -> String {
        format!("{}:due", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `prelude.lua` names the same keys (`request_key`, `tenant_key`).
    #[test]
    fn a_tenant_s_keys_are_its_own_and_the_default_tenant_keeps_the_shared_ones() {
        let keys = Keys::new("p");
        assert_eq!(keys.request(DEFAULT_TENANT, "order:1"), "{p}:request:order:1");
        assert_eq!(keys.request("acme", "order:1"), "{p}:tenant:acme:request:order:1");
        assert_eq!(keys.cases_of(Scope::All), "{p}:cases");
        assert_eq!(keys.cases_of(Scope::Tenant(DEFAULT_TENANT)), "{p}:cases");
        assert_eq!(keys.dead_of(Scope::Tenant("acme")), "{p}:tenant:acme:dead");
        assert_eq!(keys.endpoints_of(Scope::Tenant("acme")), "{p}:tenant:acme:endpoints");
        assert_eq!(keys.chaos_of(Scope::Tenant("acme")), "{p}:tenant:acme:chaos");
        assert!(Scope::All.sees("acme") && Scope::Tenant("acme").sees("acme"));
        assert!(!Scope::Tenant("acme").sees("globex") && !Scope::Tenant("acme").sees(DEFAULT_TENANT));
    }
}
