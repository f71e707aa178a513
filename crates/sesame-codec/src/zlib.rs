//! zlib compression of signed payloads, with Django's "only if it pays" rule.
//!
//! `miniz_oxide` (the pure-Rust backend `flate2` uses by default) writes valid
//! zlib streams that are not byte-identical to CPython's zlib, so a compressed
//! value of ours differs from Django's for the same data while both sides read
//! either. Uncompressed values are byte-identical.

use miniz_oxide::inflate::TINFLStatus;

use crate::Error;

/// Largest payload the decoder inflates a compressed value to, in bytes (16 MiB).
///
/// A compressed payload of a few kilobytes can inflate to gigabytes (a zip
/// bomb); decompression stops at this size with [`Error::TooLarge`] instead.
/// It equals [`MAX_SESSION_DATA_LEN`](crate::MAX_SESSION_DATA_LEN), the limit
/// on the signed text itself.
pub const MAX_DECOMPRESSED_LEN: usize = 16 * 1024 * 1024;

/// zlib's default level, which `zlib.compress(data)` uses.
const LEVEL: u8 = 6;

/// Compresses `data` when that saves at least two bytes, as Django decides.
///
/// Returns `None` when the data is to be stored as it is.
pub(crate) fn compress_if_smaller(data: &[u8]) -> Option<Vec<u8>> {
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(data, LEVEL);
    // Django: `if len(compressed) < (len(data) - 1)`.
    (compressed.len() + 1 < data.len()).then_some(compressed)
}

/// Inflates a zlib stream (header and Adler-32 required), stopping at `limit` bytes.
///
/// Bytes after the end of the stream are ignored, as Python's
/// `zlib.decompress` ignores them.
pub(crate) fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(data, limit).map_err(|e| {
        match e.status {
            TINFLStatus::HasMoreOutput => Error::TooLarge {
                len: limit.saturating_add(1),
                limit,
            },
            TINFLStatus::Adler32Mismatch => Error::Decompress("zlib checksum mismatch"),
            TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
                Error::Decompress("zlib stream is truncated")
            }
            _ => Error::Decompress("not a zlib stream"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_only_when_two_bytes_are_saved() {
        assert_eq!(compress_if_smaller(br#"{"a":1}"#), None);
        let long = br#"{"v":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        let compressed = compress_if_smaller(long).unwrap();
        assert!(compressed.len() + 2 <= long.len());
        assert_eq!(decompress(&compressed, 1024).unwrap(), long);
    }

    #[test]
    fn ignores_bytes_after_the_stream_like_python() {
        let mut data = miniz_oxide::deflate::compress_to_vec_zlib(b"{}", LEVEL);
        data.extend_from_slice(b"trailing");
        assert_eq!(decompress(&data, 1024).unwrap(), b"{}");
    }

    #[test]
    fn rejects_truncated_and_corrupted_streams() {
        let data = miniz_oxide::deflate::compress_to_vec_zlib(b"{\"a\":\"bbbbbbbb\"}", LEVEL);
        assert!(matches!(
            decompress(&data[..data.len() - 1], 1024),
            Err(Error::Decompress(_))
        ));
        let mut bad_checksum = data;
        *bad_checksum.last_mut().unwrap() ^= 1;
        assert_eq!(
            decompress(&bad_checksum, 1024),
            Err(Error::Decompress("zlib checksum mismatch"))
        );
        let raw_deflate = miniz_oxide::deflate::compress_to_vec(b"{}", LEVEL);
        assert!(matches!(
            decompress(&raw_deflate, 1024),
            Err(Error::Decompress(_))
        ));
        assert!(matches!(decompress(b"", 1024), Err(Error::Decompress(_))));
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit() {
        let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&vec![b'x'; 4 << 20], 9);
        assert!(bomb.len() < 8 * 1024, "{}", bomb.len());
        assert_eq!(
            decompress(&bomb, 1 << 20),
            Err(Error::TooLarge {
                len: (1 << 20) + 1,
                limit: 1 << 20
            })
        );
        assert_eq!(decompress(&bomb, 4 << 20).unwrap().len(), 4 << 20);
    }
}
