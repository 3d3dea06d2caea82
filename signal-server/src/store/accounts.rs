//! Users (argon2id hashes), groups, memberships and sign-in sessions.

use std::collections::BTreeSet;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{all, check_name, get, put, Store, StoreError};

/// An argon2id password hash (PHC string), made where the password was typed (the admin
/// CLI), so the server's event loop never runs argon2: it checks only that this is one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PasswordHashed(String);

impl PasswordHashed {
    /// Hashes a password (tens of milliseconds: not on an event loop).
    pub fn of(password: &str) -> Result<Self, StoreError> {
        if password.is_empty() {
            return Err(StoreError::Hash(
                "empty password; give one with --password-stdin or at the prompt".into(),
            ));
        }
        hash_password(password).map(Self)
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHashed(..)")
    }
}

impl TryFrom<String> for PasswordHashed {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        match PasswordHash::new(&s) {
            Ok(h) if h.algorithm.as_str() == "argon2id" && h.hash.is_some() => Ok(Self(s)),
            _ => Err(StoreError::Hash(
                "not an argon2id password hash (PHC string)".into(),
            )),
        }
    }
}

impl From<PasswordHashed> for String {
    fn from(h: PasswordHashed) -> Self {
        h.0
    }
}

/// A server account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Logon name.
    pub name: String,
    /// argon2id PHC string.
    pub hash: String,
    /// Disabled accounts cannot sign in or get tickets.
    pub disabled: bool,
    /// The account may only come in as a server user.
    pub force_server_security: bool,
    /// Groups the user belongs to.
    pub groups: BTreeSet<String>,
    /// When an admin last changed what the account may do (groups, disabled, forced), Unix
    /// seconds: tickets are issued after it, and hosts refuse older ones.
    #[serde(default)]
    pub changed_at: u64,
}

/// A group of users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Name.
    pub name: String,
}

/// A viewer's sign-in session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSession {
    /// Account name.
    pub user: String,
    /// The viewer PeerId the session is bound to.
    pub peer: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Hash(e.to_string()))
}

/// Checks a password against a PHC string; a malformed hash never verifies.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn device_key(user: &str, peer: &str) -> Vec<u8> {
    [user.as_bytes(), b"\0", peer.as_bytes()].concat()
}

fn token_key(token: &[u8]) -> Vec<u8> {
    Sha256::digest(token).to_vec()
}

impl Store {
    /// A user by name.
    pub fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        get(&self.users, "users", name.as_bytes())
    }

    fn must_user(&self, name: &str) -> Result<User, StoreError> {
        self.user(name)?
            .ok_or_else(|| StoreError::NoSuchUser(name.to_string()))
    }

    /// All users, by name.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        all(&self.users, "users")
    }

    /// Adds a user.
    pub fn add_user(
        &self,
        name: &str,
        password: &PasswordHashed,
        force_server_security: bool,
    ) -> Result<User, StoreError> {
        check_name(name)?;
        if self.user(name)?.is_some() {
            return Err(StoreError::UserExists(name.to_string()));
        }
        let user = User {
            name: name.to_string(),
            hash: password.as_str().to_string(),
            disabled: false,
            force_server_security,
            groups: BTreeSet::new(),
            changed_at: 0,
        };
        put(&self.users, name.as_bytes(), &user)?;
        Ok(user)
    }

    /// Deletes a user and their sessions.
    pub fn del_user(&self, name: &str) -> Result<User, StoreError> {
        let user = self.must_user(name)?;
        self.users.remove(name.as_bytes())?;
        self.end_sessions_of(name)?;
        Ok(user)
    }

    /// Changes fields of a user with `f`.
    pub fn update_user(
        &self,
        name: &str,
        f: impl FnOnce(&mut User) -> Result<(), StoreError>,
    ) -> Result<User, StoreError> {
        let mut user = self.must_user(name)?;
        f(&mut user)?;
        put(&self.users, name.as_bytes(), &user)?;
        Ok(user)
    }

    /// Sets a new password.
    pub fn set_password(&self, name: &str, password: &PasswordHashed) -> Result<User, StoreError> {
        let hash = password.as_str().to_string();
        self.update_user(name, |u| {
            u.hash = hash;
            Ok(())
        })
    }

    /// A group by name.
    pub fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        get(&self.groups, "groups", name.as_bytes())
    }

    /// All groups, by name.
    pub fn groups(&self) -> Result<Vec<Group>, StoreError> {
        all(&self.groups, "groups")
    }

    /// Members of a group, by name.
    pub fn members(&self, group: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .users()?
            .into_iter()
            .filter(|u| u.groups.contains(group))
            .map(|u| u.name)
            .collect())
    }

    /// Adds a group.
    pub fn add_group(&self, name: &str) -> Result<Group, StoreError> {
        check_name(name)?;
        if self.group(name)?.is_some() {
            return Err(StoreError::GroupExists(name.to_string()));
        }
        let g = Group {
            name: name.to_string(),
        };
        put(&self.groups, name.as_bytes(), &g)?;
        Ok(g)
    }

    /// Deletes a group and every membership in it; returns the users who lost it.
    pub fn del_group(&self, name: &str) -> Result<Vec<User>, StoreError> {
        if self.group(name)?.is_none() {
            return Err(StoreError::NoSuchGroup(name.to_string()));
        }
        self.groups.remove(name.as_bytes())?;
        let mut changed = Vec::new();
        for member in self.members(name)? {
            changed.push(self.update_user(&member, |u| {
                u.groups.remove(name);
                Ok(())
            })?);
        }
        Ok(changed)
    }

    /// Adds or removes a membership.
    pub fn set_member(&self, group: &str, user: &str, member: bool) -> Result<User, StoreError> {
        if self.group(group)?.is_none() {
            return Err(StoreError::NoSuchGroup(group.to_string()));
        }
        self.update_user(user, |u| {
            let changed = if member {
                u.groups.insert(group.to_string())
            } else {
                u.groups.remove(group)
            };
            if changed {
                Ok(())
            } else {
                Err(StoreError::Membership {
                    user: user.to_string(),
                    group: group.to_string(),
                    member,
                })
            }
        })
    }

    /// Stores a new sign-in session under the hash of `token`.
    pub fn put_session(&self, token: &[u8], session: &LoginSession) -> Result<(), StoreError> {
        put(&self.sessions, &token_key(token), session)
    }

    /// The live session for `token`, if any (expired ones are removed).
    pub fn session(&self, token: &[u8], now: u64) -> Result<Option<LoginSession>, StoreError> {
        let key = token_key(token);
        match get::<LoginSession>(&self.sessions, "sessions", &key)? {
            Some(s) if s.expires_at > now => Ok(Some(s)),
            Some(_) => {
                self.sessions.remove(key)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Records that `peer` signed in as `user`.
    pub fn remember_device(&self, user: &str, peer: &str, now: u64) -> Result<(), StoreError> {
        put(&self.devices, &device_key(user, peer), &now)
    }

    /// Whether `peer` has signed in as `user` before.
    pub fn known_device(&self, user: &str, peer: &str) -> Result<bool, StoreError> {
        Ok(self.devices.contains_key(device_key(user, peer))?)
    }

    /// Ends one sign-in session; whether it existed.
    pub fn end_session(&self, token: &[u8]) -> Result<bool, StoreError> {
        Ok(self.sessions.remove(token_key(token))?.is_some())
    }

    /// Ends every session of a user (deleted or disabled).
    pub fn end_sessions_of(&self, user: &str) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self.sessions.iter() {
            let (k, v) = item?;
            let s: LoginSession = super::decode("sessions", &v)?;
            if s.user == user {
                self.sessions.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes expired sessions; returns how many.
    pub fn purge_sessions(&self, now: u64) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self.sessions.iter() {
            let (k, v) = item?;
            let s: LoginSession = super::decode("sessions", &v)?;
            if s.expires_at <= now {
                self.sessions.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_groups_and_memberships() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let pw = PasswordHashed::of("pw1").unwrap();
        s.add_user("alice", &pw, false).unwrap();
        assert!(matches!(
            s.add_user("alice", &pw, false),
            Err(StoreError::UserExists(_))
        ));
        assert!(matches!(
            s.add_user("bad/name", &pw, false),
            Err(StoreError::BadName { .. })
        ));
        s.add_group("Sales").unwrap();
        assert!(matches!(
            s.add_group("Sales"),
            Err(StoreError::GroupExists(_))
        ));
        s.set_member("Sales", "alice", true).unwrap();
        assert!(matches!(
            s.set_member("Sales", "alice", true),
            Err(StoreError::Membership { member: true, .. })
        ));
        assert!(matches!(
            s.set_member("Nope", "alice", true),
            Err(StoreError::NoSuchGroup(_))
        ));
        assert!(matches!(
            s.set_member("Sales", "bob", true),
            Err(StoreError::NoSuchUser(_))
        ));
        assert_eq!(s.members("Sales").unwrap(), vec!["alice".to_string()]);
        let changed = s.del_group("Sales").unwrap();
        assert_eq!(changed.len(), 1);
        assert!(s.user("alice").unwrap().unwrap().groups.is_empty());
        let u = s.user("alice").unwrap().unwrap();
        assert!(verify_password("pw1", &u.hash));
        assert!(!verify_password("pw2", &u.hash));
        assert!(u.hash.starts_with("$argon2id$"));
    }

    #[test]
    fn sessions_expire_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let sess = LoginSession {
            user: "alice".into(),
            peer: "p".into(),
            expires_at: 100,
        };
        s.put_session(b"token", &sess).unwrap();
        assert!(s.sessions.get(b"token").unwrap().is_none());
        assert_eq!(s.session(b"token", 99).unwrap(), Some(sess));
        assert_eq!(s.session(b"token", 100).unwrap(), None);
        assert_eq!(
            s.session(b"token", 1).unwrap(),
            None,
            "expired session was removed"
        );
    }

    #[test]
    fn only_argon2id_hashes_pass_and_they_verify() {
        let h = PasswordHashed::of("correct horse").unwrap();
        assert!(verify_password("correct horse", h.as_str()));
        let json = serde_json::to_string(&h).unwrap();
        let back: PasswordHashed = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        for bad in [
            "\"correct horse\"",
            "\"$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA\"",
            "\"\"",
        ] {
            assert!(
                serde_json::from_str::<PasswordHashed>(bad).is_err(),
                "{bad}"
            );
        }
        assert!(PasswordHashed::of("").is_err());
        assert!(!format!("{h:?}").contains("argon2"), "Debug shows no hash");
    }
}
