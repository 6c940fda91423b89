//! gzip for payloads: compression above a threshold, bounded decompression.
//!
//! Creating a deflate state costs more than compressing a 1 KiB payload with it (51 µs vs
//! 8 µs with miniz_oxide here), so each thread keeps one compressor and one decompressor and
//! `reset()`s them between payloads. The output is standard gzip (RFC 1952), so `gunzip`
//! reads a payload taken off the wire.

use crate::pool::BufferPool;
use crate::{Error, Result};
use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

/// gzip member header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
const TRAILER_LEN: usize = 8;

thread_local! {
    static COMPRESSOR: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Gzips `input` at `level`, or returns `None` when the result would not be smaller.
///
/// The deflate output goes to a pooled scratch buffer first; only the final, exact-size
/// result is allocated.
pub(crate) fn compress(input: &[u8], level: u32, scratch: &BufferPool<Vec<u8>>) -> Option<Vec<u8>> {
    let budget = input.len().checked_sub(HEADER.len() + TRAILER_LEN + 1)?;
    if looks_incompressible(input) {
        return None;
    }
    let mut out = scratch.take();
    out.clear();
    // Room for the worst case (deflate's bound plus slack), never just `budget`: zlib-rs
    // 0.6's fast level panics when the output fills mid-block ("buf.len() must fit in
    // remaining()"), so the stream must always be able to finish; we judge the size after.
    out.reserve(deflate_bound(input.len()));
    let deflated = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let state = match cell.as_mut() {
            Some((l, state)) if *l == level => {
                state.reset();
                state
            }
            _ => {
                &mut cell
                    .insert((level, Compress::new(Compression::new(level), false)))
                    .1
            }
        };
        matches!(
            state.compress_vec(input, &mut out, FlushCompress::Finish),
            Ok(Status::StreamEnd) if out.len() <= budget
        )
    });
    if !deflated {
        return None;
    }
    let mut crc = Crc::new();
    crc.update(input);
    let mut gz = Vec::with_capacity(HEADER.len() + out.len() + TRAILER_LEN);
    gz.extend_from_slice(&HEADER);
    gz.extend_from_slice(&out);
    gz.extend_from_slice(&crc.sum().to_le_bytes());
    gz.extend_from_slice(&(input.len() as u32).to_le_bytes());
    Some(gz)
}

/// A quick look at 256 bytes spread over the input: random or already-compressed data uses
/// most byte values, text and structured data few. Deflating 4 KiB of random bytes costs
/// about as much as sending a hundred small messages, only to be thrown away.
fn looks_incompressible(input: &[u8]) -> bool {
    const SAMPLES: usize = 256;
    if input.len() < 2 * SAMPLES {
        return false;
    }
    let mut seen = [false; 256];
    let mut distinct = 0;
    let step = input.len() / SAMPLES;
    for i in 0..SAMPLES {
        let b = input[i * step] as usize;
        if !seen[b] {
            seen[b] = true;
            distinct += 1;
        }
    }
    // Uniform bytes show ~162 distinct values in 256 draws; JSON and text well under 100.
    distinct > 140
}

/// An upper bound on raw deflate output for `len` input bytes (zlib's `deflateBound` with
/// generous slack for block headers).
fn deflate_bound(len: usize) -> usize {
    len + (len >> 3) + (len >> 12) + 256
}

/// Gunzips `gz`, which must expand to exactly `expected_len` bytes (at most `max`).
///
/// The output is allocated once at `expected_len`; a stream that would produce more, less,
/// or fails its CRC is [`Error::CorruptPayload`], so hostile input cannot allocate more than
/// the caller's bound.
pub(crate) fn decompress(gz: &[u8], expected_len: usize, max: usize) -> Result<Vec<u8>> {
    if expected_len > max {
        return Err(Error::CorruptPayload("declared size over the maximum"));
    }
    if gz.len() < HEADER.len() + TRAILER_LEN || gz[..4] != HEADER[..4] {
        return Err(Error::CorruptPayload("not a swarmbus gzip member"));
    }
    let body = &gz[HEADER.len()..gz.len() - TRAILER_LEN];
    let trailer = &gz[gz.len() - TRAILER_LEN..];
    let want_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let want_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if want_len as usize != expected_len % (1 << 32) {
        return Err(Error::CorruptPayload(
            "gzip size does not match the declared size",
        ));
    }
    // One spare byte tells "exactly expected_len" from "more than that".
    let mut out = Vec::with_capacity(expected_len + 1);
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let state = cell.get_or_insert_with(|| Decompress::new(false));
        state.reset(false);
        match state.decompress_vec(body, &mut out, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) if out.len() == expected_len => Ok(()),
            Ok(_) => Err(Error::CorruptPayload("deflate stream has the wrong length")),
            Err(_) => Err(Error::CorruptPayload("invalid deflate stream")),
        }
    })?;
    let mut crc = Crc::new();
    crc.update(&out);
    if crc.sum() != want_crc {
        return Err(Error::CorruptPayload("crc mismatch"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolSizing;
    use std::io::Read;

    fn scratch() -> BufferPool<Vec<u8>> {
        BufferPool::new(
            "bytes",
            PoolSizing {
                initial: 2,
                max: 4,
                item_capacity: 4096,
            },
            true,
            std::time::Duration::from_secs(30),
        )
    }

    /// Bytes deflate cannot shrink (xorshift from `seed`).
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn json(n: usize) -> Vec<u8> {
        let mut s = String::from("[");
        let mut i = 0;
        while s.len() < n {
            s.push_str(&format!(
                "{{\"id\":{i},\"name\":\"agent-{i}\",\"ok\":true}},"
            ));
            i += 1;
        }
        s.truncate(n);
        s.into_bytes()
    }

    #[test]
    fn round_trip_and_real_gzip() {
        let input = json(4096);
        let gz = compress(&input, 1, &scratch()).expect("json compresses");
        assert!(gz.len() < input.len() / 2);
        assert_eq!(decompress(&gz, input.len(), 1 << 20).unwrap(), input);
        // Standard gzip: a stock decoder reads it.
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, input);
    }

    #[test]
    fn the_entropy_check_skips_random_but_not_text() {
        let random = noise(7, 4096);
        assert!(looks_incompressible(&random));
        assert!(!looks_incompressible(&json(4096)));
        assert!(!looks_incompressible(&[0u8; 4096]));
        // Half text, half noise still gets its chance at deflate.
        let mut half = json(4096);
        half[..2048].copy_from_slice(&random[..2048]);
        assert!(!looks_incompressible(&half));
    }

    #[test]
    fn incompressible_is_none() {
        assert!(compress(&noise(1, 2048), 1, &scratch()).is_none());
    }

    /// Incompressible then compressible input on one thread's reused deflate state, many
    /// sizes: every result round-trips. (The zlib-rs panic of a state that ran out of output
    /// room did not reproduce here, only in release builds under load: smoke.sh covers it.)
    #[test]
    fn reused_state_survives_incompressible_then_compressible() {
        let pool = scratch();
        for round in 0..200 {
            let size = 1025 + (round * 397) % 16_000;
            let random = noise(round as u64 + 1, size);
            // Twice in a row: the second reused a state left mid-block by the first.
            assert!(compress(&random, 1, &pool).is_none());
            assert!(compress(&noise(round as u64 + 1000, size), 1, &pool).is_none());
            let mut mixed = json(size);
            mixed[..size / 3].copy_from_slice(&random[..size / 3]);
            for input in [json(size), mixed] {
                if let Some(gz) = compress(&input, 1, &pool) {
                    assert_eq!(decompress(&gz, input.len(), 1 << 20).unwrap(), input);
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn any_sequence_round_trips(
            inputs in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..9000),
                    proptest::collection::vec(proptest::sample::select(b"ab{}:,".to_vec()), 0..9000),
                ],
                1..12,
            ),
            level in 0u32..=9,
        ) {
            let pool = scratch();
            for input in inputs {
                if let Some(gz) = compress(&input, level, &pool) {
                    proptest::prop_assert!(gz.len() < input.len());
                    proptest::prop_assert_eq!(decompress(&gz, input.len(), 1 << 20).unwrap(), input);
                }
            }
        }
    }

    #[test]
    fn corrupt_and_lying_inputs_are_errors() {
        let input = json(2000);
        let gz = compress(&input, 1, &scratch()).unwrap();
        // Declared size too big for the bound: refused before allocating.
        assert!(decompress(&gz, usize::MAX, 1 << 20).is_err());
        // Declared size wrong.
        assert!(decompress(&gz, input.len() - 1, 1 << 20).is_err());
        // Flipped byte in the body.
        let mut bad = gz.clone();
        bad[20] ^= 0x55;
        assert!(decompress(&bad, input.len(), 1 << 20).is_err());
        // Truncated.
        assert!(decompress(&gz[..gz.len() / 2], input.len(), 1 << 20).is_err());
        assert!(decompress(b"", 0, 10).is_err());
    }
}
