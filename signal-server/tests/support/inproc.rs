//! A server in-process on port 0 with a real sled dir, its clients over real libp2p on
//! loopback, and admin commands through the real admin socket (shared by the server tests).
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use portico_core::identity::Identity;
use portico_signal::admin::socket::{self, Sent};
use portico_signal::admin::AdminCommand;
use portico_signal::{Config, Running, Store};
use portico_signal_client::client::SignalClient;

pub struct Server {
    pub dir: PathBuf,
    pub identity: Identity,
    pub running: Running,
}

pub async fn start_in(dir: &Path, config: Config) -> Server {
    let (identity, _) = Identity::load_or_create(dir).unwrap();
    let store = Store::open(dir).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let running = portico_signal::start(config, identity.clone(), store, dir)
        .await
        .unwrap();
    Server {
        dir: dir.to_path_buf(),
        identity,
        running,
    }
}

impl Server {
    pub fn tcp_addr(&self) -> libp2p::Multiaddr {
        self.running
            .listen_addrs
            .iter()
            .find(|a| a.to_string().contains("/tcp/"))
            .unwrap()
            .clone()
    }

    pub async fn client(&self, id: &Identity) -> SignalClient {
        SignalClient::connect(id, self.tcp_addr(), Some(self.running.peer_id))
            .await
            .unwrap()
    }

    pub async fn admin(&self, cmd: AdminCommand) -> String {
        let dir = self.dir.clone();
        let reply = tokio::task::spawn_blocking(move || socket::send(&dir, &cmd))
            .await
            .unwrap()
            .unwrap();
        match reply {
            Sent::Reply(r) => {
                assert!(r.ok, "admin command failed: {}", r.output);
                r.output
            }
            Sent::NotRunning => panic!("server not running"),
        }
    }

    /// A one-use enrollment token for `folder`.
    pub async fn enroll_token(&self, folder: &str) -> String {
        let out = self
            .admin(AdminCommand::NodeEnroll {
                path: folder.into(),
                uses: 1,
                hours: 1,
            })
            .await;
        out.lines()
            .find(|l| l.starts_with("enroll-"))
            .unwrap_or_else(|| panic!("no token in {out}"))
            .to_string()
    }
}
