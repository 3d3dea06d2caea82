//! The H.264 side of the encoder: openh264 in screen-content mode under bitrate control,
//! for the regions with many colours (video, photos, animation).

use openh264::encoder::{
    BitRate, Encoder as H264, EncoderConfig, FrameRate, FrameType, RateControlMode, UsageType,
};
use openh264::formats::{RgbaSliceU8, YUVBuffer};
use openh264::OpenH264API;
use portico_core::tiles::{damage_rects, Grid};
use portico_core::wire::session::{Codec, FrameRole, VideoFrame};

/// Default target bitrate: H.264 carries only many-colour content now (text goes lossless),
/// and 3 Mbit/s keeps full-screen video at 720p–1080p around 33–35 dB in the comparison
/// (`--bitrate` on the viewer changes it per stream).
pub const DEFAULT_BPS: u32 = 3_000_000;

/// Builds an openh264 encoder for screen content at `bps`.
pub fn h264_encoder(bps: u32) -> Result<H264, openh264::Error> {
    let cfg = EncoderConfig::new()
        .usage_type(UsageType::ScreenContentRealTime)
        .bitrate(BitRate::from_bps(bps))
        .max_frame_rate(FrameRate::from_hz(30.0))
        .rate_control_mode(RateControlMode::Bitrate)
        // Rate control only holds the bitrate when it may skip frames; a skipped frame's
        // damage is carried into the next one, and refreshed losslessly at rest.
        .skip_frames(true)
        .adaptive_quantization(false)
        .background_detection(false)
        .num_threads(1);
    H264::with_api_config(OpenH264API::from_source(), cfg)
}

/// One H.264 stream.
pub(super) struct Video {
    /// The encoder (made on first use and after a bitrate change).
    h264: Option<H264>,
    /// Target bitrate.
    pub(super) bps: u32,
    /// The frame converted for the encoder.
    yuv: Option<YUVBuffer>,
    /// Video frames sent.
    seq: u64,
    /// The next frame must be an IDR (a stream start, a new encoder, an encode error).
    pub(super) force_key: bool,
    /// Damage of frames rate control skipped, carried into the next frame.
    carried: Vec<usize>,
}

impl Video {
    pub(super) fn new() -> Self {
        Self {
            h264: None,
            bps: DEFAULT_BPS,
            yuv: None,
            seq: 0,
            force_key: true,
            carried: Vec::new(),
        }
    }

    /// A new picture size: a new encoder and an IDR.
    pub(super) fn restart(&mut self) {
        self.h264 = None;
        self.yuv = None;
        self.force_key = true;
        self.carried.clear();
    }

    /// Damage waiting from skipped frames.
    pub(super) fn has_carried(&self) -> bool {
        !self.carried.is_empty()
    }

    /// Encodes the whole frame; the viewer takes the tiles in `changed` (plus damage carried
    /// from skipped frames) from it, or all of it when `whole`. `None` when rate control
    /// skipped the frame or encoding failed. Returns the frame and the tiles it damaged.
    pub(super) fn encode(
        &mut self,
        grid: Grid,
        rgba: &[u8],
        changed: &[usize],
        whole: bool,
        capture_us: u64,
        monitor: u8,
    ) -> Option<(VideoFrame, Vec<usize>)> {
        if self.h264.is_none() {
            match h264_encoder(self.bps) {
                Ok(e) => self.h264 = Some(e),
                Err(e) => {
                    tracing::error!(error = %e, "cannot create the H.264 encoder");
                    return None;
                }
            }
        }
        let yuv = self
            .yuv
            .get_or_insert_with(|| YUVBuffer::new(grid.width as usize, grid.height as usize));
        yuv.read_rgba8(RgbaSliceU8::new(
            rgba,
            (grid.width as usize, grid.height as usize),
        ));
        let enc = self.h264.as_mut()?;
        if self.force_key || whole {
            enc.force_intra_frame();
        }
        let mut damage = std::mem::take(&mut self.carried);
        damage.extend_from_slice(changed);
        damage.sort_unstable();
        damage.dedup();
        let (data, idr) = match enc.encode(&*yuv) {
            Ok(bs) => (
                bs.to_vec(),
                matches!(bs.frame_type(), FrameType::IDR | FrameType::I),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "encode failed; forcing a keyframe next");
                self.force_key = true;
                self.carried = damage;
                return None;
            }
        };
        if data.is_empty() {
            self.carried = damage;
            return None;
        }
        if idr {
            self.force_key = false;
        }
        self.seq += 1;
        let all = whole || damage.len() == grid.len();
        let frame = VideoFrame {
            seq: self.seq,
            capture_us,
            keyframe: idr,
            monitor,
            width: grid.width,
            height: grid.height,
            codec: Codec::H264,
            role: FrameRole::Update,
            // Empty damage: the whole picture.
            damage: if all {
                vec![]
            } else {
                damage_rects(grid, &damage)
            },
            data,
        };
        let damaged = if all {
            (0..grid.len()).collect()
        } else {
            damage
        };
        Some((frame, damaged))
    }
}
