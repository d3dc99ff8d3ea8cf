//! The test kit's misbehaving peers ([`hookline_testkit::hostile`]),
//! started the way a test wants: a peer that cannot start fails the test.

use std::ops::Deref;

pub use hookline_testkit::hostile::{Hostility, Stats};

/// A misbehaving peer on `127.0.0.1` (see [`Hostility`]); stops when dropped.
pub struct Hostile(hookline_testkit::Hostile);

impl Hostile {
    pub async fn start(hostility: Hostility) -> Self {
        Self(hookline_testkit::Hostile::start(hostility).await.unwrap())
    }
}

impl Deref for Hostile {
    type Target = hookline_testkit::Hostile;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
