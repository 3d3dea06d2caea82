use super::*;

fn err(r: Result<impl std::fmt::Debug, BrowseError>) -> String {
    r.unwrap_err().to_string()
}

fn names(roots: &Roots, path: &str) -> Vec<(String, bool)> {
    let (entries, truncated) = roots.list(path).unwrap();
    assert!(!truncated);
    entries.into_iter().map(|e| (e.name, e.dir)).collect()
}

#[test]
fn paths_stay_inside_their_root() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    let secret = dir.path().join("secret");
    std::fs::create_dir_all(share.join("docs")).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(share.join("docs/a.txt"), b"hello").unwrap();
    std::fs::write(secret.join("key"), b"no").unwrap();
    std::os::unix::fs::symlink(&secret, share.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../secret/key", share.join("docs/up")).unwrap();
    // Followed when relative and inside; an absolute link is refused even when it points
    // inside (the kernel resolves beneath the root only).
    std::os::unix::fs::symlink("docs/a.txt", share.join("inside")).unwrap();
    std::os::unix::fs::symlink(share.join("docs/a.txt"), share.join("absolute")).unwrap();
    let roots = Roots::new(&[share.clone(), dir.path().join("missing")], &[]);

    assert_eq!(roots.names(), ["share"]);
    assert_eq!(names(&roots, "/"), [("share".to_string(), true)]);
    assert_eq!(
        names(&roots, "/share"),
        [("docs".into(), true), ("inside".into(), false)],
        "the escaping link is not listed"
    );
    assert_eq!(names(&roots, "/share/docs"), [("a.txt".to_string(), false)]);
    assert!(err(roots.resolve_for_test("/share/../secret")).contains(".."));
    assert!(err(roots.resolve_for_test("/share/escape/key")).contains("outside"));
    assert!(err(roots.resolve_for_test("/share/escape")).contains("outside"));
    assert!(err(roots.open("/share/docs/up")).contains("outside"));
    assert!(err(roots.open("/share/absolute")).contains("outside"));
    assert!(roots.resolve_for_test("share").is_err());
    assert!(err(roots.resolve_for_test("/nope/x")).contains("no shared folder"));
    let (file, size) = roots.open("/share/docs/a.txt").unwrap();
    assert_eq!(size, 5);
    let mut got = Vec::new();
    let sha = read_chunks(file, |_, d| {
        got.extend(d);
        true
    })
    .unwrap()
    .unwrap();
    assert_eq!(got, b"hello");
    assert_eq!(sha, Sha256::digest(b"hello").to_vec());
    assert!(err(roots.open("/share/docs")).contains("not a file"));
    let (file, _) = roots.open("/share/inside").unwrap();
    drop(file);
}

#[test]
fn secrets_and_the_hosts_own_data_are_never_served() {
    // Not tempdir()'s hidden `.tmpXXXX`: a dot-folder is never a root.
    let home = tempfile::Builder::new().prefix("home").tempdir().unwrap();
    let h = home.path();
    let data = h.join("portico-data");
    std::fs::create_dir_all(h.join(".ssh")).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(h.join(".ssh/id_ed25519"), b"ssh key").unwrap();
    std::fs::write(data.join("identity.key"), b"host key").unwrap();
    std::fs::write(data.join("notes.txt"), b"in the data dir").unwrap();
    std::fs::write(h.join("id_rsa"), b"a key left in the open").unwrap();
    std::fs::write(h.join("server.pem"), b"pem").unwrap();
    std::fs::write(h.join("report.txt"), b"fine").unwrap();
    // Links inside the root to what is hidden: neither listed nor followed.
    std::os::unix::fs::symlink(".ssh/id_ed25519", h.join("innocent")).unwrap();
    std::os::unix::fs::symlink("portico-data", h.join("data-link")).unwrap();
    let fifo = h.join("pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let roots = Roots::new(
        &[h.to_path_buf(), h.join(".ssh"), data.clone()],
        std::slice::from_ref(&data),
    );
    assert_eq!(
        roots.names().len(),
        1,
        "a dot-folder or the data dir is no root"
    );
    let root = roots.names()[0].to_string();
    assert_eq!(
        names(&roots, &format!("/{root}")),
        [("report.txt".to_string(), false)],
        "only the plain file is listed (no dot-dirs, keys, data dir, links to them, FIFO)"
    );
    for hidden in [
        ".ssh/id_ed25519",
        "portico-data/identity.key",
        "portico-data/notes.txt",
        "id_rsa",
        "server.pem",
        "innocent",
        "data-link/identity.key",
    ] {
        let path = format!("/{root}/{hidden}");
        assert!(err(roots.open(&path)).contains("not shared"), "{path}");
    }
    assert!(err(roots.list(&format!("/{root}/.ssh"))).contains("not shared"));
    // A FIFO is refused at once (the test would hang if the host opened it to read).
    assert!(err(roots.open(&format!("/{root}/pipe"))).contains("not a file"));
}

#[test]
fn the_fallback_walk_follows_no_symlink() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(dir.path().join("a/b/f"), b"x").unwrap();
    std::os::unix::fs::symlink("b", dir.path().join("a/l")).unwrap();
    let root =
        rustix::fs::open(dir.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
    assert!(beneath::walk_for_test(&root, Path::new("a/b/f"), Open::Read).is_ok());
    assert!(matches!(
        beneath::walk_for_test(&root, Path::new("a/l/f"), Open::Read),
        Err(BeneathError::Outside | BeneathError::Io(_))
    ));
    assert!(matches!(
        beneath::walk_for_test(&root, Path::new("../x"), Open::Path),
        Err(BeneathError::Outside)
    ));
}
