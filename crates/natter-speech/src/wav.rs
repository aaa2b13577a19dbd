//! A minimal WAV (RIFF, 16-bit PCM, mono) encoder: what the HTTP engine uploads.

/// Encodes `[-1, 1]` float samples as 16-bit mono WAV.
pub fn encode_f32(rate: u32, samples: &[f32]) -> Vec<u8> {
    let ints: Vec<i16> = samples.iter().map(|s| (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16).collect();
    encode_i16(rate, &ints)
}

/// Encodes 16-bit samples as mono WAV.
pub fn encode_i16(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// Checks the `fmt ` chunk of a RIFF/WAVE file before a decoder sees it: symphonia divides by
/// (and panics on) a zero sample rate, and zero channels or sample width are no audio either.
/// Anything that is not RIFF/WAVE passes (it is not this check's business).
pub fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Ok(());
    }
    let mut offset = 12usize;
    while let Some(header) = bytes.get(offset..offset + 8) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[0..4] == b"fmt " {
            let fmt = bytes.get(offset + 8..offset + 24).ok_or("WAV `fmt ` chunk too short")?;
            let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
            let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
            let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
            // Beyond these a header is not a recording.
            if !(1..=64).contains(&channels) || !(1..=768_000).contains(&rate) || !(1..=64).contains(&bits) {
                return Err(format!("WAV header with {channels} channels, {rate} Hz, {bits} bits per sample"));
            }
            return Ok(());
        }
        // Chunks are padded to an even size.
        offset = match offset.checked_add(8 + size + size % 2) {
            Some(next) => next,
            None => break,
        };
    }
    Err("WAV without a `fmt ` chunk".into())
}
