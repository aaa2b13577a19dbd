//! WAV (RIFF/WAVE) length from its chunks: the `data` chunk's size over the `fmt ` chunk's byte
//! rate. Nothing is decoded.

pub(super) fn duration_ms(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut byte_rate = None;
    let mut offset = 12;
    while offset + 8 <= bytes.len() {
        let id = &bytes[offset..offset + 4];
        let size = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().ok()?);
        let body = offset + 8;
        match id {
            b"fmt " if body + 12 <= bytes.len() => {
                byte_rate = Some(u32::from_le_bytes(bytes[body + 8..body + 12].try_into().ok()?));
            }
            b"data" => {
                let rate = u64::from(byte_rate.filter(|r| *r > 0)?);
                // A recorder that streams may leave the size at 0 or u32::MAX: use what is there.
                let available = (bytes.len() - body) as u64;
                let data = if size == 0 || u64::from(size) > available { available } else { u64::from(size) };
                return Some(data * 1000 / rate);
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        offset = body.checked_add(size as usize)?.checked_add(size as usize % 2)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::duration_ms;

    /// A mono 16-bit PCM WAV of `samples` samples at `rate` Hz, with an extra chunk before `fmt `.
    pub(crate) fn wav(rate: u32, samples: u32) -> Vec<u8> {
        let data_len = samples * 2;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(4 + 14 + 24 + 8 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(b"LIST\x05\0\0\0abcde\0");
        out.extend_from_slice(b"fmt \x10\0\0\0\x01\0\x01\0");
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2).to_le_bytes());
        out.extend_from_slice(b"\x02\0\x10\0data");
        out.extend_from_slice(&data_len.to_le_bytes());
        out.resize(out.len() + data_len as usize, 0);
        out
    }

    #[test]
    fn reads_the_length_from_the_chunks() {
        assert_eq!(duration_ms(&wav(16_000, 24_000)), Some(1500));
        assert_eq!(duration_ms(&wav(8_000, 8_000)), Some(1000));
        let mut truncated = wav(16_000, 16_000);
        truncated.truncate(truncated.len() - 16_000);
        assert_eq!(duration_ms(&truncated), Some(500), "a short file counts what is there");
        assert_eq!(duration_ms(b"RIFF\0\0\0\0WAVEjunk"), None);
        assert_eq!(duration_ms(b"OggS"), None);
    }
}
