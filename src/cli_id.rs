//! `portico id`.

use std::path::Path;

use portico_core::Identity;

/// Prints the identity as the owner reads it to someone who wants to connect.
pub(crate) fn print(
    id: &Identity,
    created: bool,
    data: &Path,
    reg: Option<&crate::registration::Registration>,
) {
    if created {
        println!("Created a new identity in {}", data.display());
    }
    match reg {
        Some(r) => println!(
            "Internet-ID: {} ({} at {})",
            r.internet_id, r.node_path, r.server_name
        ),
        None => {
            println!("Internet-ID: not registered (run `portico host --server HOST` to get one)")
        }
    }
    println!("PeerId:      {}", id.peer_id());
    println!("Fingerprint: {}", id.fingerprint());
    println!("Data dir:    {}", data.display());
}
