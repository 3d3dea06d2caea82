//! portico-actors: the host and viewer actors (identity, access control, capture, encoding,
//! input, network) built on portico-core. The media and network actors land with the
//! remote-desktop issue; this crate is the place for them in the workspace layout.
