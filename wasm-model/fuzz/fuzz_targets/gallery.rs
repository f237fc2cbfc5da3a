#![no_main]
//! Random bytes, and (first byte odd) a valid header + CRC around random rows, so the fuzzer gets past
//! the CRC check and exercises the row parsing and scoring too.
use libfuzzer_sys::fuzz_target;
use wasm_model::gallery::{Gallery, GalleryIndex};

fuzz_target!(|data: &[u8]| {
    let bytes = if data.first().is_some_and(|b| b & 1 == 1) && data.len() > 2 {
        let dtype = u32::from(data[1] % 4);
        let body = &data[2..];
        let mut b = b"IMGPGAL\0".to_vec();
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&dtype.to_le_bytes());
        // Bytes per row for D = 2: f32 8, f16 4, int8 2 + a 4-byte scale; dtype 0 is invalid.
        let row_bytes = [8, 8, 4, 6][dtype as usize];
        let n = (body.len() / row_bytes) as u32;
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(b"0123456789abcdef0123456789abcdef");
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(body);
        let crc = crc32fast_hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    } else {
        data.to_vec()
    };
    if let Ok(g) = Gallery::from_bytes(&bytes) {
        let _ = g.scores(&[0.6, 0.8]);
        let _ = g.row(0);
    }
    let _ = GalleryIndex::from_json(&String::from_utf8_lossy(data));
});

/// CRC-32 (IEEE), bitwise: the fuzz crate avoids depending on crc32fast directly.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
