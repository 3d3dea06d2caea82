//! Round trips, the context and start points, malformed input.

use super::*;
use proptest::prelude::*;

fn text(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut v = vec![250u8; (w * h * 4) as usize];
    for y in 0..h {
        for x in 0..w {
            if (x * 5 + (y / 12 + seed) * 7 + y % 12) % 9 < 2 {
                let i = ((y * w + x) * 4) as usize;
                v[i..i + 3].copy_from_slice(&[10, 20, (seed * 40) as u8]);
            }
        }
    }
    v
}

fn tiles(w: u32, h: u32) -> Vec<Rect> {
    let g = super::super::Grid {
        width: w,
        height: h,
    };
    (0..g.len()).map(|i| g.rect(i)).collect()
}

fn opaque(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect()
}

fn decode(
    d: &mut LosslessDecoder,
    reset: bool,
    n: usize,
    data: &[u8],
    w: u32,
    h: u32,
    into: &mut [u8],
) -> Result<Vec<Rect>, LosslessError> {
    d.decode(
        reset,
        n as u32,
        data,
        Canvas {
            rgba: into,
            width: w,
            height: h,
        },
    )
}

#[test]
fn updates_round_trip_and_the_context_pays_off() {
    let (w, h) = (200u32, 130u32);
    let mut enc = LosslessEncoder::new();
    let mut dec = LosslessDecoder::new();
    let mut shown = vec![0u8; (w * h * 4) as usize];
    let rects = tiles(w, h);
    let first = text(w, h, 1);
    let a = enc.encode(&first, w, &rects).unwrap().data;
    let got = decode(&mut dec, true, rects.len(), &a, w, h, &mut shown).unwrap();
    assert_eq!(got, rects);
    assert_eq!(shown, opaque(&first));
    // A start point is one complete zstd frame (coded at its own level)...
    assert!(zstd::bulk::decompress(&a, 1 << 20).is_ok());
    // ...and the same content again costs a fraction: the stream after it has the start
    // point as its dictionary.
    let b = enc.encode(&first, w, &rects).unwrap().data;
    assert!(b.len() * 3 < a.len(), "{} vs {}", b.len(), a.len());
    decode(&mut dec, false, rects.len(), &b, w, h, &mut shown).unwrap();
    assert_eq!(shown, opaque(&first));
    // A photo-like region goes raw and still round-trips.
    let photo: Vec<u8> = (0..w * h * 4)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let c = enc.encode(&photo, w, &rects[..3]).unwrap().data;
    decode(&mut dec, false, 3, &c, w, h, &mut shown).unwrap();
    assert_eq!(shown[..64 * 4], opaque(&photo)[..64 * 4]);
    // A viewer that joins without the context waits for a reset.
    let mut late = LosslessDecoder::new();
    assert!(matches!(
        decode(&mut late, false, rects.len(), &b, w, h, &mut shown),
        Err(LosslessError::NoContext)
    ));
    enc.reset();
    let d = enc.encode(&first, w, &rects).unwrap().data;
    decode(&mut late, true, rects.len(), &d, w, h, &mut shown).unwrap();
}

#[test]
fn lined_up_solid_tiles_travel_as_one_rectangle() {
    let (w, h) = (640u32, 300u32);
    // A flat background with one tile of text in it.
    let mut px: Vec<u8> = (0..w * h).flat_map(|_| [30, 40, 50, 255]).collect();
    let t = text(64, 64, 5);
    for y in 0..64usize {
        let row = (y * w as usize + 128) * 4;
        px[row..row + 256].copy_from_slice(&t[y * 256..y * 256 + 256]);
    }
    let rects = tiles(w, h);
    let mut enc = LosslessEncoder::new();
    let coded = enc.encode(&px, w, &rects).unwrap();
    assert!(
        (coded.rects as usize) * 5 < rects.len(),
        "{} rectangles for {} tiles",
        coded.rects,
        rects.len()
    );
    let mut shown = vec![0u8; px.len()];
    let got = decode(
        &mut LosslessDecoder::new(),
        true,
        coded.rects as usize,
        &coded.data,
        w,
        h,
        &mut shown,
    )
    .unwrap();
    assert!(shown == opaque(&px), "the picture differs");
    assert!(got.iter().all(|r| r.w <= MAX_SOLID && r.h <= MAX_SOLID));
    assert!(got.iter().any(|r| r.w > TILE || r.h > TILE));
    // Only solid rectangles may be larger than a tile, and never past MAX_SOLID.
    let craft = |w1: u8, kind: u8| {
        let mut b = vec![0, 0, 0, 0, w1, 63, kind];
        b.extend_from_slice(&[1, 2, 3]);
        zstd::bulk::compress(&b, 1).unwrap()
    };
    let mut big = vec![0u8; (300 * 64 * 4) as usize];
    let mut dec = LosslessDecoder::new();
    assert!(decode(&mut dec, true, 1, &craft(255, SOLID), 300, 64, &mut big).is_ok());
    assert!(matches!(
        decode(&mut dec, true, 1, &craft(64, PALETTE), 300, 64, &mut big),
        Err(LosslessError::BadRect { .. })
    ));
}

#[test]
fn malformed_updates_are_typed_errors() {
    let (w, h) = (128u32, 64u32);
    let mut enc = LosslessEncoder::new();
    let frame = text(w, h, 2);
    let rects = tiles(w, h);
    let good = enc.encode(&frame, w, &rects).unwrap().data;
    let mut shown = vec![0u8; (w * h * 4) as usize];
    let mut dec = LosslessDecoder::new();
    // More rectangles declared than the data holds; fewer; garbage; too many.
    assert!(matches!(
        decode(&mut dec, true, 3, &good, w, h, &mut shown),
        Err(LosslessError::Truncated)
    ));
    assert!(matches!(
        decode(&mut dec, true, 1, &good, w, h, &mut shown),
        Err(LosslessError::Trailing)
    ));
    assert!(decode(&mut dec, true, 2, b"garbage!", w, h, &mut shown).is_err());
    assert!(matches!(
        decode(
            &mut dec,
            true,
            MAX_RECTS as usize + 1,
            &good,
            w,
            h,
            &mut shown
        ),
        Err(LosslessError::TooManyRects { .. })
    ));
    // A screen smaller than the rectangles; a bad palette index; an unknown kind.
    assert!(matches!(
        decode(&mut dec, true, 2, &good, 100, 64, &mut shown),
        Err(LosslessError::BadRect { .. })
    ));
    let craft = |body: &[u8]| zstd::bulk::compress(body, 1).unwrap();
    // Three colours (2-bit indices), the last pixel's index 3 points past them.
    let mut bad_index = vec![0, 0, 0, 0, 3, 0, PALETTE, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    bad_index.push(0b00_01_10_11);
    assert!(matches!(
        decode(&mut dec, true, 1, &craft(&bad_index), w, h, &mut shown),
        Err(LosslessError::BadIndex { index: 3, len: 3 })
    ));
    assert!(matches!(
        decode(
            &mut dec,
            true,
            1,
            &craft(&[0, 0, 0, 0, 0, 0, 9]),
            w,
            h,
            &mut shown
        ),
        Err(LosslessError::BadKind(9))
    ));
    // After an error the decoder has no context until the next reset.
    assert!(matches!(
        decode(&mut dec, false, 2, &good, w, h, &mut shown),
        Err(LosslessError::NoContext)
    ));
}

#[test]
fn colour_counts() {
    let (w, h) = (64u32, 64u32);
    let t = text(w, h, 3);
    let all = Rect { x: 0, y: 0, w, h };
    assert!(few_colours(&t, w, all, 2));
    let grad: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % 251) as u8, (i / 7) as u8, 0, 255])
        .collect();
    assert!(!few_colours(&grad, w, all, 32));
}

proptest! {
    #[test]
    fn any_picture_round_trips(w in 1u32..150, h in 1u32..100, seed in any::<u64>(), colours in 1u32..400) {
        let px: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let c = ((u64::from(i) * 2654435761) ^ seed) % u64::from(colours);
                [(c * 37) as u8, ((c * 11) >> 2) as u8, (c >> 3) as u8, 255]
            })
            .collect();
        let rects = tiles(w, h);
        let mut enc = LosslessEncoder::new();
        let coded = enc.encode(&px, w, &rects).unwrap();
        let mut shown = vec![0u8; px.len()];
        let mut dec = LosslessDecoder::new();
        let got = decode(&mut dec, true, coded.rects as usize, &coded.data, w, h, &mut shown).unwrap();
        prop_assert_eq!(shown, px);
        // Every tile is covered, whether sent alone or in a joined solid rectangle.
        let covered: u64 = got.iter().map(|r| u64::from(r.w * r.h)).sum();
        prop_assert_eq!(covered, u64::from(w * h));
    }

    #[test]
    fn garbage_and_flipped_bytes_never_panic(count in 0u32..40, junk in proptest::collection::vec(any::<u8>(), 0..512), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let (w, h) = (96u32, 80u32);
        let mut shown = vec![0u8; (w * h * 4) as usize];
        let mut dec = LosslessDecoder::new();
        let _ = decode(&mut dec, true, count as usize, &junk, w, h, &mut shown);
        let src = text(w, h, 4);
        let rects = tiles(w, h);
        let mut good = LosslessEncoder::new().encode(&src, w, &rects).unwrap().data;
        for (at, v) in flips {
            let i = at.index(good.len());
            good[i] ^= v;
        }
        let _ = decode(&mut dec, true, rects.len(), &good, w, h, &mut shown);
        prop_assert_eq!(shown.len(), (w * h * 4) as usize);
    }
}
