//! [`Secret`]: a value that never prints.

use std::fmt;

use zeroize::Zeroize;

/// A secret (a password, a private key, a master key in text form). `Debug` and `Display`
/// print `***`; the value is reachable only through [`Secret::expose_secret`], a name that
/// stands out in review; the memory is wiped when the secret is dropped. There is
/// deliberately no `Serialize`: putting a secret on the wire is an explicit act.
///
/// ```
/// use psm_core::vault::Secret;
/// let s = Secret::new(String::from("hunter2"));
/// assert_eq!(format!("{s} {s:?}"), "*** ***");
/// assert_eq!(s.expose_secret(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself. Every call site is a place where the secret leaves its wrapper.
    pub fn expose_secret(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
