//! WAV (RIFF/WAVE) length from its chunks: the `data` chunk's size over the `fmt ` chunk's byte
//! rate. Nothing is decoded, but the `fmt ` fields must be sane: a zero sample rate, channel
//! count or sample width is refused here (symphonia panics on a zero sample rate).

use super::{AudioError, invalid};

/// Beyond these a header is not a recording (the largest rates and channel counts in use are
/// 768 kHz and 7.1.4 / ambisonics).
const MAX_SAMPLE_RATE: u32 = 768_000;
const MAX_CHANNELS: u16 = 64;
const MAX_BITS: u16 = 64;

pub(super) fn duration_ms(bytes: &[u8]) -> Result<u64, AudioError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(invalid("not a RIFF/WAVE file"));
    }
    let mut byte_rate = None;
    let mut offset = 12;
    while offset + 8 <= bytes.len() {
        let id = &bytes[offset..offset + 4];
        let size = u32_at(bytes, offset + 4);
        let body = offset + 8;
        match id {
            b"fmt " => {
                let end = bytes.len().min(body.saturating_add(size as usize));
                byte_rate = Some(check_format(bytes.get(body..end)).map_err(invalid)?);
            }
            b"data" => {
                let rate = u64::from(byte_rate.ok_or_else(|| invalid("no `fmt ` chunk before `data`"))?);
                // A recorder that streams may leave the size at 0 or u32::MAX: use what is there.
                let available = (bytes.len() - body) as u64;
                let data = if size == 0 || u64::from(size) > available { available } else { u64::from(size) };
                if data == 0 {
                    return Err(invalid("no samples"));
                }
                return Ok(data * 1000 / rate);
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        offset = body
            .checked_add(size as usize)
            .and_then(|end| end.checked_add(size as usize % 2))
            .ok_or_else(|| invalid("chunk size out of range"))?;
    }
    Err(invalid("no `data` chunk"))
}

/// The byte rate of a `fmt ` chunk body, after checking the fields a decoder divides by.
fn check_format(body: Option<&[u8]>) -> Result<u32, String> {
    let body = body.filter(|b| b.len() >= 16).ok_or("`fmt ` chunk too short")?;
    let channels = u16_at(body, 2);
    let sample_rate = u32_at(body, 4);
    let byte_rate = u32_at(body, 8);
    let block_align = u16_at(body, 12);
    let bits = u16_at(body, 14);
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(format!("{channels} channels"));
    }
    if !(1..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(format!("sample rate {sample_rate} Hz"));
    }
    if !(1..=MAX_BITS).contains(&bits) {
        return Err(format!("{bits} bits per sample"));
    }
    if byte_rate == 0 || block_align == 0 {
        return Err("zero byte rate or block size".into());
    }
    Ok(byte_rate)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
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

    /// Offset of the `fmt ` body in [`wav`]'s output.
    const FMT: usize = 12 + 14 + 8;

    #[test]
    fn reads_the_length_from_the_chunks() {
        assert_eq!(duration_ms(&wav(16_000, 24_000)), Ok(1500));
        assert_eq!(duration_ms(&wav(8_000, 8_000)), Ok(1000));
        let mut truncated = wav(16_000, 16_000);
        truncated.truncate(truncated.len() - 16_000);
        assert_eq!(duration_ms(&truncated), Ok(500), "a short file counts what is there");
        assert!(duration_ms(b"RIFF\0\0\0\0WAVEjunk").is_err());
        assert!(duration_ms(b"OggS").is_err());
    }

    #[test]
    fn refuses_zero_and_absurd_header_fields() {
        let patched = |at: usize, value: &[u8]| {
            let mut bytes = wav(16_000, 1600);
            bytes[FMT + at..FMT + at + value.len()].copy_from_slice(value);
            duration_ms(&bytes)
        };
        assert!(patched(4, &0u32.to_le_bytes()).is_err(), "sample rate 0");
        assert!(patched(4, &u32::MAX.to_le_bytes()).is_err(), "sample rate 4 GHz");
        assert!(patched(2, &0u16.to_le_bytes()).is_err(), "no channels");
        assert!(patched(2, &u16::MAX.to_le_bytes()).is_err(), "65535 channels");
        assert!(patched(14, &0u16.to_le_bytes()).is_err(), "0 bits per sample");
        assert!(patched(8, &0u32.to_le_bytes()).is_err(), "byte rate 0");
        assert!(patched(12, &0u16.to_le_bytes()).is_err(), "block size 0");
        assert_eq!(patched(4, &16_000u32.to_le_bytes()), Ok(100), "the unpatched file is fine");
        let mut short_fmt = wav(16_000, 1600);
        short_fmt.truncate(FMT + 6);
        assert!(duration_ms(&short_fmt).is_err());
    }
}
