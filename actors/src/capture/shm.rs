//! MIT-SHM for the damage source: the X server writes a region's pixels into a shared memory
//! segment (SHM 1.2: the server creates it and passes its fd), and the capture reads them
//! from the mapping instead of receiving them over the socket. Worth it for large regions
//! (full-screen motion); small ones go through plain `GetImage`.

use memmap2::Mmap;
use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ImageFormat, Rectangle};
use x11rb::rust_connection::RustConnection;

/// A shared segment attached to the X server and mapped here.
pub(super) struct Segment {
    /// The segment's id on the X server.
    seg: u32,
    /// Its bytes, as the server writes them.
    map: Mmap,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Segment {
    /// Creates a segment of `size` bytes (SHM 1.2 or later; `Err` otherwise).
    pub(super) fn create(conn: &RustConnection, size: u32) -> Result<Self, String> {
        if conn
            .extension_information(shm::X11_EXTENSION_NAME)
            .map_err(err)?
            .is_none()
        {
            return Err("the X server lacks MIT-SHM".into());
        }
        let v = conn
            .shm_query_version()
            .map_err(err)?
            .reply()
            .map_err(err)?;
        if (v.major_version, v.minor_version) < (1, 2) {
            return Err(format!(
                "MIT-SHM {}.{} cannot create segments (needs 1.2)",
                v.major_version, v.minor_version
            ));
        }
        let seg = conn.generate_id().map_err(err)?;
        let reply = conn
            .shm_create_segment(seg, size, false)
            .map_err(err)?
            .reply()
            .map_err(err)?;
        let file = std::fs::File::from(reply.shm_fd);
        // SAFETY: the mapping is read-only and private to this struct; the only writer is the
        // X server, and it writes a region only while we wait for that region's GetImage
        // reply, after which we read it (`read`) before asking for the next one. The file
        // stays mapped as long as `map` lives and is never truncated (the server sized it).
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().len(size as usize).map(&file) }
            .map_err(|e| format!("cannot map the MIT-SHM segment: {e}"))?;
        Ok(Self { seg, map })
    }

    /// Reads `r` of `drawable` (32-bit Z pixmap) into the segment; returns its bytes
    /// (`width * height * 4`, row after row).
    pub(super) fn read(
        &self,
        conn: &RustConnection,
        drawable: u32,
        r: Rectangle,
    ) -> Result<&[u8], String> {
        let len = usize::from(r.width) * usize::from(r.height) * 4;
        if len > self.map.len() {
            return Err(format!(
                "{len} bytes do not fit the {}-byte segment",
                self.map.len()
            ));
        }
        conn.shm_get_image(
            drawable,
            r.x,
            r.y,
            r.width,
            r.height,
            !0,
            ImageFormat::Z_PIXMAP.into(),
            self.seg,
            0,
        )
        .map_err(err)?
        .reply()
        .map_err(err)?;
        Ok(&self.map[..len])
    }
}
