//! Ogg length from its pages. Every page must be whole and pass its checksum, with nothing but
//! pages in the file: bytes after an `OggS` magic that are not a page, or a file cut off
//! mid-page (an interrupted upload), are refused rather than played as far as they go. For Opus
//! (what browsers and opusenc write) the length is the last granule position minus the
//! pre-skip, at 48 kHz, and at least one audio packet must be complete; other codecs in a sound
//! Ogg are left to a decoder ([`AudioError::NotRead`]).

use super::{AudioError, invalid};

/// `header_type` flag of a stream's first page.
const BEGINS_STREAM: u8 = 0x02;
/// Opus granule positions count 48 kHz samples, whatever the input rate was.
const OPUS_SAMPLES_PER_MS: u64 = 48;
/// Fixed part of a page header; the segment table follows.
const HEADER: usize = 27;
/// A granule position meaning "no packet ends on this page".
const NO_GRANULE: u64 = u64::MAX;

/// One page, checked.
struct Page<'a> {
    header_type: u8,
    granule: u64,
    serial: u32,
    body: &'a [u8],
}

pub(super) fn duration_ms(bytes: &[u8]) -> Result<u64, AudioError> {
    let mut offset = 0;
    // The first stream's serial number and, when it is Opus, its pre-skip.
    let mut stream: Option<(u32, Option<u64>)> = None;
    let mut last_granule = 0;
    while offset < bytes.len() {
        let (page, next) = page_at(bytes, offset)?;
        offset = next;
        match stream {
            None => {
                if page.header_type & BEGINS_STREAM == 0 {
                    return Err(invalid("the first Ogg page does not begin a stream"));
                }
                stream = Some((page.serial, opus_pre_skip(page.body)?));
            }
            Some((serial, _)) if serial == page.serial && page.granule != NO_GRANULE => {
                last_granule = page.granule;
            }
            Some(_) => {}
        }
    }
    match stream {
        None => Err(invalid("no Ogg pages")),
        Some((_, None)) => Err(AudioError::NotRead),
        // Header pages have granule position 0: a larger one means an audio packet ended.
        Some((_, Some(_))) if last_granule == 0 => Err(invalid("no complete Opus audio packet")),
        Some((_, Some(pre_skip))) => Ok(last_granule.saturating_sub(pre_skip) / OPUS_SAMPLES_PER_MS),
    }
}

/// The page at `offset` and where the next one starts.
fn page_at(bytes: &[u8], offset: usize) -> Result<(Page<'_>, usize), AudioError> {
    let cut_off = || invalid(format!("the Ogg data is cut off mid-page at byte {offset}"));
    let header = bytes.get(offset..offset + HEADER).ok_or_else(cut_off)?;
    if &header[0..4] != b"OggS" {
        return Err(invalid(format!("no Ogg page at byte {offset}")));
    }
    if header[4] != 0 {
        return Err(invalid(format!("unknown Ogg version {}", header[4])));
    }
    let segments = usize::from(header[26]);
    let table = bytes.get(offset + HEADER..offset + HEADER + segments).ok_or_else(cut_off)?;
    let body_start = offset + HEADER + segments;
    let body_len: usize = table.iter().map(|&lacing| usize::from(lacing)).sum();
    let body = bytes.get(body_start..body_start + body_len).ok_or_else(cut_off)?;
    let stored = u32::from_le_bytes([header[22], header[23], header[24], header[25]]);
    let computed =
        crc_update(crc_update(crc_update(0, &header[..22]), &[0; 4]), &bytes[offset + 26..body_start + body_len]);
    if stored != computed {
        return Err(invalid(format!("the Ogg page at byte {offset} fails its checksum")));
    }
    let mut granule = [0u8; 8];
    granule.copy_from_slice(&header[6..14]);
    let page = Page {
        header_type: header[5],
        granule: u64::from_le_bytes(granule),
        serial: u32::from_le_bytes([header[14], header[15], header[16], header[17]]),
        body,
    };
    Ok((page, body_start + body_len))
}

/// The pre-skip of an Opus identification header, `None` when the stream is not Opus.
fn opus_pre_skip(first: &[u8]) -> Result<Option<u64>, AudioError> {
    if !first.starts_with(b"OpusHead") {
        return Ok(None);
    }
    if first.len() < 19 {
        return Err(invalid("short OpusHead"));
    }
    // Versions 0-15 are compatible (RFC 7845 §5.1); a channel count of 0 is invalid.
    if first[8] >> 4 != 0 || first[9] == 0 {
        return Err(invalid("unsupported or invalid OpusHead"));
    }
    Ok(Some(u64::from(u16::from_le_bytes([first[10], first[11]]))))
}

/// Ogg's CRC-32: polynomial 0x04c11db7, initial value 0, not reflected, no final xor.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = (index as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

fn crc_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        crc = (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ byte)];
    }
    crc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An Ogg page of one stream holding `packets` (each under 255 bytes, so one lacing value).
    fn page(header_type: u8, granule: u64, sequence: u32, packets: &[&[u8]]) -> Vec<u8> {
        let mut out = b"OggS\0".to_vec();
        out.push(header_type);
        out.extend_from_slice(&granule.to_le_bytes());
        out.extend_from_slice(&7u32.to_le_bytes());
        out.extend_from_slice(&sequence.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(packets.len() as u8);
        out.extend(packets.iter().map(|p| p.len() as u8));
        for packet in packets {
            out.extend_from_slice(packet);
        }
        let crc = crc_update(0, &out);
        out[22..26].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// An Ogg/Opus stream of `seconds` (pre-skip 312): head, tags, one page of "audio".
    pub(crate) fn opus(seconds: u64) -> Vec<u8> {
        let head = b"OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0";
        let mut out = page(BEGINS_STREAM, 0, 0, &[head]);
        out.extend(page(0, 0, 1, &[b"OpusTags\x05\0\0\0natter\0\0\0\0"]));
        out.extend(page(0x04, 312 + seconds * 48_000, 2, &[&[0xfc, 0xff, 0xfe], &[0xfc, 0xff, 0xfe]]));
        out
    }

    #[test]
    fn the_checksum_is_ogg_s() {
        // CRC-32/CKSUM's check value is 0x765e7680 for "123456789"; Ogg's differs only in
        // having no final xor.
        assert_eq!(crc_update(0, b"123456789"), 0x765e_7680 ^ 0xffff_ffff);
    }

    #[test]
    fn reads_opus_length_from_the_last_granule() {
        assert_eq!(duration_ms(&opus(3)), Ok(3000));
    }

    #[test]
    fn refuses_garbage_truncation_and_streams_without_audio() {
        let whole = opus(2);
        for cut in [whole.len() - 1, whole.len() - 4, 30, 27, 5] {
            assert!(matches!(duration_ms(&whole[..cut]), Err(AudioError::Invalid(_))), "cut at {cut}");
        }
        let mut garbage = b"OggS".to_vec();
        garbage.extend((0..2000u32).map(|i| (i * 7919 % 251) as u8));
        assert!(matches!(duration_ms(&garbage), Err(AudioError::Invalid(_))));
        let mut flipped = whole.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert!(matches!(duration_ms(&flipped), Err(AudioError::Invalid(_))), "checksum");
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"trailing junk");
        assert!(matches!(duration_ms(&trailing), Err(AudioError::Invalid(_))));
        let headers_only = &whole[..whole.len() - page(0x04, 0, 2, &[&[0xfc, 0xff, 0xfe], &[0xfc, 0xff, 0xfe]]).len()];
        assert!(matches!(duration_ms(headers_only), Err(AudioError::Invalid(_))), "no audio packet");
        assert!(matches!(duration_ms(b""), Err(AudioError::Invalid(_))));
    }

    #[test]
    fn other_codecs_in_a_sound_ogg_are_left_to_a_decoder() {
        let vorbis = page(BEGINS_STREAM, 0, 0, &[b"\x01vorbis\0\0\0\0\x01\x44\xac\0\0"]);
        assert_eq!(duration_ms(&vorbis), Err(AudioError::NotRead));
    }
}
