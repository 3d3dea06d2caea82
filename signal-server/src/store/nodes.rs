//! The node tree (folders and hosts, the Cloud Server hierarchy) and host registrations.
//!
//! Flags (`allow_guests`, `allow_visitors`) are set on any node and inherited: a host's
//! effective flag is the nearest explicit setting on it or its folders, off when none.
//! The server's tree is authoritative: a host's `--name` places it on first registration
//! only; afterwards the administrator moves it with `node move`.

use std::fmt;

use portico_core::InternetId;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{all, get, put, Store, StoreError};

/// A normalised node path: `/` or `/seg/seg…`, each segment 1–64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodePath(String);

impl NodePath {
    /// The root folder.
    pub fn root() -> Self {
        Self("/".into())
    }

    /// Parses and normalises (`Sales/pc-7/` → `/Sales/pc-7`).
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let bad = |reason| StoreError::BadPath {
            path: s.to_string(),
            reason,
        };
        let mut out = String::new();
        for seg in s.split('/').filter(|seg| !seg.is_empty()) {
            if seg == "." || seg == ".." {
                return Err(bad("'.' and '..' are not allowed"));
            }
            if seg.chars().count() > 64 {
                return Err(bad("each part must be at most 64 characters"));
            }
            if seg.chars().any(|c| c.is_control()) || seg.trim() != seg {
                return Err(bad("no control characters or surrounding spaces"));
            }
            out.push('/');
            out.push_str(seg);
        }
        if out.len() > 512 {
            return Err(bad("at most 512 characters"));
        }
        Ok(if out.is_empty() {
            Self::root()
        } else {
            Self(out)
        })
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last part (`pc-7` of `/Sales/pc-7`); `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.0.rsplit('/').next().filter(|n| !n.is_empty())
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The parent folder (`None` for the root).
    pub fn parent(&self) -> Option<Self> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            Self::root()
        } else {
            Self(self.0[..cut].to_string())
        })
    }

    /// This path and its ancestors, nearest first (root excluded).
    pub fn self_and_ancestors(&self) -> Vec<Self> {
        let mut out = Vec::new();
        let mut p = Some(self.clone());
        while let Some(cur) = p {
            if cur.is_root() {
                break;
            }
            p = cur.parent();
            out.push(cur);
        }
        out
    }

    /// Whether `other` is this path or below it.
    pub fn contains(&self, other: &NodePath) -> bool {
        self.is_root() || other.0 == self.0 || other.0.starts_with(&format!("{}/", self.0))
    }

    /// `self` with the prefix `from` replaced by `to` (caller checks `from.contains(self)`).
    fn rebase(&self, from: &NodePath, to: &NodePath) -> Self {
        Self(format!("{}{}", to.0, &self.0[from.0.len()..]))
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NodePath {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<NodePath> for String {
    fn from(p: NodePath) -> Self {
        p.0
    }
}

/// A folder or host in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Where.
    pub path: NodePath,
    /// The host's PeerId, for host nodes.
    pub host: Option<String>,
    /// Explicit guest flag (inherited when `None`).
    pub allow_guests: Option<bool>,
    /// Explicit visitor flag (inherited when `None`).
    pub allow_visitors: Option<bool>,
}

/// A registered host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// PeerId (string form).
    pub peer: String,
    /// Stable Internet-ID.
    pub internet_id: InternetId,
    /// Where it sits in the tree.
    pub node_path: NodePath,
    /// Addresses it reported last.
    pub addrs: Vec<String>,
    /// Agent string.
    pub agent: String,
    /// First registration, Unix seconds.
    pub registered_at: u64,
}

/// Where a new host goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// At this path; missing folders above it are created (an admin placed it).
    At(NodePath),
    /// In this existing folder (an enrollment token's), named `name` or by its Internet-ID.
    In {
        /// The folder; it must exist: hosts do not create folders.
        folder: NodePath,
        /// The host's name in it (one part).
        name: Option<String>,
    },
    /// Under `/unassigned/`, named by its Internet-ID.
    Unassigned,
}

/// Effective flags of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// Guests allowed.
    pub allow_guests: bool,
    /// Visitors allowed.
    pub allow_visitors: bool,
}

impl Store {
    /// The node at `path`.
    pub fn node(&self, path: &NodePath) -> Result<Option<Node>, StoreError> {
        get(&self.nodes, "nodes", path.as_str().as_bytes())
    }

    fn must_node(&self, path: &NodePath) -> Result<Node, StoreError> {
        self.node(path)?
            .ok_or_else(|| StoreError::PathNotFound(path.to_string()))
    }

    /// The node at `path` and everything below it, in path order.
    pub fn subtree(&self, path: &NodePath) -> Result<Vec<Node>, StoreError> {
        if !path.is_root() && self.node(path)?.is_none() {
            return Err(StoreError::PathNotFound(path.to_string()));
        }
        let mut out: Vec<Node> = all(&self.nodes, "nodes")?;
        out.retain(|n| path.contains(&n.path));
        Ok(out)
    }

    /// Creates a folder and any missing parents.
    pub fn mkdir(&self, path: &NodePath) -> Result<(), StoreError> {
        if path.is_root() || self.node(path)?.is_some() {
            return Err(StoreError::PathExists(path.to_string()));
        }
        self.ensure_folders(path)
    }

    /// Creates `path` and its ancestors as folders where missing; refuses to go under a host.
    fn ensure_folders(&self, path: &NodePath) -> Result<(), StoreError> {
        for p in path.self_and_ancestors().into_iter().rev() {
            match self.node(&p)? {
                Some(n) if n.host.is_some() => return Err(StoreError::NotAFolder(p.to_string())),
                Some(_) => {}
                None => put(
                    &self.nodes,
                    p.as_str().as_bytes(),
                    &Node {
                        path: p.clone(),
                        host: None,
                        allow_guests: None,
                        allow_visitors: None,
                    },
                )?,
            }
        }
        Ok(())
    }

    /// Moves a node (and its subtree) to `to`; returns the hosts that moved.
    pub fn move_node(&self, from: &NodePath, to: &NodePath) -> Result<Vec<HostRecord>, StoreError> {
        if from.is_root() {
            return Err(StoreError::BadPath {
                path: from.to_string(),
                reason: "the root cannot move",
            });
        }
        self.must_node(from)?;
        if to.is_root() || self.node(to)?.is_some() {
            return Err(StoreError::PathExists(to.to_string()));
        }
        if from.contains(to) {
            return Err(StoreError::BadPath {
                path: to.to_string(),
                reason: "cannot move a folder into itself",
            });
        }
        if let Some(parent) = to.parent().filter(|p| !p.is_root()) {
            self.ensure_folders(&parent)?;
        }
        let mut moved = Vec::new();
        for mut node in self.subtree(from)? {
            self.nodes.remove(node.path.as_str().as_bytes())?;
            node.path = node.path.rebase(from, to);
            put(&self.nodes, node.path.as_str().as_bytes(), &node)?;
            if let Some(peer) = &node.host {
                if let Some(mut h) = self.host(peer)? {
                    h.node_path = node.path.clone();
                    put(&self.hosts, peer.as_bytes(), &h)?;
                    moved.push(h);
                }
            }
        }
        Ok(moved)
    }

    /// Sets explicit flags on a node (`None` leaves a flag as it is).
    pub fn set_flags(
        &self,
        path: &NodePath,
        guests: Option<bool>,
        visitors: Option<bool>,
    ) -> Result<Node, StoreError> {
        let mut node = self.must_node(path)?;
        if guests.is_some() {
            node.allow_guests = guests;
        }
        if visitors.is_some() {
            node.allow_visitors = visitors;
        }
        put(&self.nodes, path.as_str().as_bytes(), &node)?;
        Ok(node)
    }

    /// A node's effective flags (nearest explicit setting, off when none). Global switches
    /// are not included.
    pub fn effective_flags(&self, path: &NodePath) -> Result<Flags, StoreError> {
        let (mut g, mut v) = (None, None);
        for p in path.self_and_ancestors() {
            if let Some(n) = self.node(&p)? {
                g = g.or(n.allow_guests);
                v = v.or(n.allow_visitors);
            }
        }
        Ok(Flags {
            allow_guests: g.unwrap_or(false),
            allow_visitors: v.unwrap_or(false),
        })
    }

    /// A registered host by PeerId.
    pub fn host(&self, peer: &str) -> Result<Option<HostRecord>, StoreError> {
        get(&self.hosts, "hosts", peer.as_bytes())
    }

    /// All registered hosts.
    pub fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        all(&self.hosts, "hosts")
    }

    /// A registered host by Internet-ID.
    pub fn host_by_id(&self, id: InternetId) -> Result<Option<HostRecord>, StoreError> {
        match self.ids.get(id.as_u32().to_be_bytes())? {
            Some(peer) => self.host(&String::from_utf8_lossy(&peer)),
            None => Ok(None),
        }
    }

    /// A registered host by node path.
    pub fn host_by_path(&self, path: &NodePath) -> Result<Option<HostRecord>, StoreError> {
        match self.node(path)?.and_then(|n| n.host) {
            Some(peer) => self.host(&peer),
            None => Ok(None),
        }
    }

    /// Refreshes a registered host's addresses and agent; `None` when the server does not
    /// know it (it must enroll).
    pub fn refresh_host(
        &self,
        peer: &str,
        addrs: Vec<String>,
        agent: &str,
    ) -> Result<Option<HostRecord>, StoreError> {
        let Some(mut h) = self.host(peer)? else {
            return Ok(None);
        };
        if h.addrs != addrs || h.agent != agent {
            h.addrs = addrs;
            h.agent = agent.to_string();
            put(&self.hosts, peer.as_bytes(), &h)?;
        }
        Ok(Some(h))
    }

    /// Registers a host, or refreshes a known one (keeping its ID and place in the tree: a
    /// node path, once taken, stays bound to its host's key). Returns the record and whether
    /// it is new. Callers decide who may register (an enrollment token, an admin).
    pub fn register_host(
        &self,
        peer: &str,
        placement: &Placement,
        addrs: Vec<String>,
        agent: &str,
        now: u64,
    ) -> Result<(HostRecord, bool), StoreError> {
        if let Some(h) = self.refresh_host(peer, addrs.clone(), agent)? {
            return Ok((h, false));
        }
        let internet_id = self.free_internet_id()?;
        let by_id = internet_id.to_string().replace(' ', "-");
        let path = match placement {
            Placement::At(p) if p.is_root() => {
                return Err(StoreError::BadPath {
                    path: p.to_string(),
                    reason: "a host needs a name below /",
                })
            }
            Placement::At(p) => p.clone(),
            Placement::Unassigned => NodePath::parse(&format!("/unassigned/{by_id}"))?,
            Placement::In { folder, name } => {
                let leaf = name.as_deref().unwrap_or(&by_id);
                let path = NodePath::parse(&format!("{}/{leaf}", folder.as_str()))?;
                if path.parent().as_ref() != Some(folder) {
                    return Err(StoreError::BadPath {
                        path: leaf.to_string(),
                        reason: "a host's name is one part, without '/'",
                    });
                }
                match self.node(folder)? {
                    Some(n) if n.host.is_none() => {}
                    None if folder.is_root() => {}
                    Some(_) => return Err(StoreError::NotAFolder(folder.to_string())),
                    None => return Err(StoreError::PathNotFound(folder.to_string())),
                }
                path
            }
        };
        if self.node(&path)?.is_some() {
            return Err(StoreError::PathExists(path.to_string()));
        }
        if let Some(parent) = path.parent().filter(|p| !p.is_root()) {
            self.ensure_folders(&parent)?;
        }
        put(
            &self.nodes,
            path.as_str().as_bytes(),
            &Node {
                path: path.clone(),
                host: Some(peer.to_string()),
                allow_guests: None,
                allow_visitors: None,
            },
        )?;
        let record = HostRecord {
            peer: peer.to_string(),
            internet_id,
            node_path: path,
            addrs,
            agent: agent.to_string(),
            registered_at: now,
        };
        put(&self.hosts, peer.as_bytes(), &record)?;
        self.ids
            .insert(internet_id.as_u32().to_be_bytes(), peer.as_bytes())?;
        Ok((record, true))
    }

    fn free_internet_id(&self) -> Result<InternetId, StoreError> {
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            let id = InternetId::from_payload(rng.gen_range(10_000_000..=99_999_999))
                .map_err(|_| StoreError::IdsExhausted)?;
            if !self.ids.contains_key(id.as_u32().to_be_bytes())? {
                return Ok(id);
            }
        }
        Err(StoreError::IdsExhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NodePath {
        NodePath::parse(s).unwrap()
    }

    #[test]
    fn paths_normalise_and_refuse_traversal() {
        assert_eq!(p("Sales//pc-7/").as_str(), "/Sales/pc-7");
        assert_eq!(p("/").as_str(), "/");
        assert!(NodePath::parse("/a/../b").is_err());
        assert_eq!(p("/a/b").parent(), Some(p("/a")));
        assert_eq!(p("/a").parent(), Some(NodePath::root()));
        assert!(p("/a").contains(&p("/a/b")) && !p("/a").contains(&p("/ab")));
    }

    #[test]
    fn register_places_hosts_and_flags_inherit() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (h, new) = s
            .register_host("peerA", &Placement::At(p("/Sales/pc-7")), vec![], "t", 1)
            .unwrap();
        assert!(new);
        assert_eq!(h.node_path, p("/Sales/pc-7"));
        assert!(
            s.node(&p("/Sales")).unwrap().is_some(),
            "parent folder created"
        );
        let (again, new) = s
            .register_host(
                "peerA",
                &Placement::At(p("/Elsewhere")),
                vec!["/ip4/1.2.3.4/tcp/1".into()],
                "t",
                2,
            )
            .unwrap();
        assert!(!new);
        assert_eq!(again.internet_id, h.internet_id, "stable Internet-ID");
        assert_eq!(again.node_path, h.node_path, "the tree is authoritative");
        let (b, _) = s
            .register_host("peerB", &Placement::Unassigned, vec![], "t", 3)
            .unwrap();
        assert!(b.node_path.as_str().starts_with("/unassigned/"));
        assert_ne!(b.internet_id, h.internet_id);
        assert!(matches!(
            s.register_host("peerC", &Placement::At(p("/Sales/pc-7")), vec![], "t", 4),
            Err(StoreError::PathExists(_))
        ));
        assert!(matches!(
            s.register_host("peerC", &Placement::At(p("/Sales/pc-7/x")), vec![], "t", 4),
            Err(StoreError::NotAFolder(_))
        ));
        // Flags: default off, inherited from the folder, overridden on the host.
        assert_eq!(s.effective_flags(&h.node_path).unwrap(), Flags::default());
        s.set_flags(&p("/Sales"), Some(true), Some(true)).unwrap();
        assert_eq!(
            s.effective_flags(&h.node_path).unwrap(),
            Flags {
                allow_guests: true,
                allow_visitors: true
            }
        );
        s.set_flags(&h.node_path, None, Some(false)).unwrap();
        assert_eq!(
            s.effective_flags(&h.node_path).unwrap(),
            Flags {
                allow_guests: true,
                allow_visitors: false
            }
        );
        // Lookups.
        assert_eq!(s.host_by_id(h.internet_id).unwrap().unwrap().peer, "peerA");
        assert_eq!(
            s.host_by_path(&p("/Sales/pc-7")).unwrap().unwrap().peer,
            "peerA"
        );
    }

    #[test]
    fn move_subtree_updates_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.register_host("peerA", &Placement::At(p("/Sales/pc-7")), vec![], "t", 1)
            .unwrap();
        s.mkdir(&p("/Marketing")).unwrap();
        assert!(matches!(
            s.mkdir(&p("/Marketing")),
            Err(StoreError::PathExists(_))
        ));
        assert!(matches!(
            s.move_node(&p("/Sales"), &p("/Sales/inner")),
            Err(StoreError::BadPath { .. })
        ));
        let moved = s.move_node(&p("/Sales"), &p("/Marketing/Sales")).unwrap();
        assert_eq!(moved.len(), 1);
        assert_eq!(
            s.host("peerA").unwrap().unwrap().node_path,
            p("/Marketing/Sales/pc-7")
        );
        assert!(s.node(&p("/Sales")).unwrap().is_none());
        assert!(matches!(
            s.move_node(&p("/Nope"), &p("/X")),
            Err(StoreError::PathNotFound(_))
        ));
        let all: Vec<String> = s
            .subtree(&NodePath::root())
            .unwrap()
            .into_iter()
            .map(|n| n.path.to_string())
            .collect();
        assert_eq!(
            all,
            vec!["/Marketing", "/Marketing/Sales", "/Marketing/Sales/pc-7"]
        );
    }
}
