//! Opus packets to PCM for symphonia, in Rust: a symphonia [`Decoder`] over the `opus-rs` crate
//! (a port of libopus 1.6, no C, so nothing to build with cmake). symphonia demuxes Ogg and WebM;
//! the stream's layout and pre-skip come from its OpusHead (Ogg's identification header, WebM's
//! CodecPrivate), as RFC 7845 defines it. Output is always 48 kHz, Opus's own rate.

use opus_rs::multistream::{ChannelMappingTable, MultistreamDecoder};
use symphonia::core::audio::{AsAudioBufferRef, AudioBuffer, AudioBufferRef, Channels, Signal, SignalSpec};
use symphonia::core::codecs::{
    CODEC_TYPE_OPUS, CodecDescriptor, CodecParameters, Decoder, DecoderOptions, FinalizeResult,
};
use symphonia::core::errors::{Error, Result, unsupported_error};
use symphonia::core::formats::Packet;
use symphonia::core::support_codec;

/// Opus decodes at 48 kHz; the OpusHead's input rate is only informative.
const RATE: u32 = 48_000;
/// The longest packet, 120 ms at 48 kHz, in samples per channel.
const MAX_FRAMES: usize = 5_760;
/// A mapping table's entry for an output channel that stays silent.
const SILENT: u8 = 255;

/// The fields of an OpusHead (RFC 7845 §5.1) a decoder needs.
#[derive(Debug, Clone, PartialEq)]
struct OpusHead {
    channels: usize,
    /// Samples at 48 kHz to drop from the start of the decoded stream.
    pre_skip: usize,
    /// Q7.8 dB, to apply to every output sample.
    output_gain: i16,
    family: u8,
    streams: usize,
    coupled_streams: usize,
    /// For each output channel, the decoded channel it takes (255: silence).
    mapping: Vec<u8>,
}

impl OpusHead {
    fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 19 || &bytes[..8] != b"OpusHead" {
            return unsupported_error("opus: no OpusHead in the codec parameters");
        }
        // The upper four bits are the major version; only 0 is defined.
        if bytes[8] >> 4 != 0 {
            return unsupported_error("opus: unknown OpusHead version");
        }
        let channels = usize::from(bytes[9]);
        let pre_skip = usize::from(u16::from_le_bytes([bytes[10], bytes[11]]));
        let output_gain = i16::from_le_bytes([bytes[16], bytes[17]]);
        let family = bytes[18];
        if family == 0 {
            return Self::single_stream(channels, pre_skip, output_gain);
        }
        let Some(table) = bytes.get(19..21 + channels) else {
            return unsupported_error("opus: truncated channel mapping table");
        };
        let (streams, coupled_streams, mapping) = (usize::from(table[0]), usize::from(table[1]), &table[2..]);
        let decoded_channels = streams + coupled_streams;
        let valid = channels > 0
            && streams > 0
            && coupled_streams <= streams
            && mapping.iter().all(|&slot| slot == SILENT || usize::from(slot) < decoded_channels);
        if !valid {
            return unsupported_error("opus: invalid channel mapping table");
        }
        Ok(Self { channels, pre_skip, output_gain, family, streams, coupled_streams, mapping: mapping.to_vec() })
    }

    /// Family 0: one stream, mono or stereo, channels in order.
    fn single_stream(channels: usize, pre_skip: usize, output_gain: i16) -> Result<Self> {
        if !(1..=2).contains(&channels) {
            return unsupported_error("opus: mapping family 0 is mono or stereo");
        }
        Ok(Self {
            channels,
            pre_skip,
            output_gain,
            family: 0,
            streams: 1,
            coupled_streams: channels - 1,
            mapping: (0..channels as u8).collect(),
        })
    }

    /// The container's codec parameters, for a stream without an OpusHead.
    fn from_params(params: &CodecParameters) -> Result<Self> {
        let channels = params.channels.or_else(|| params.channel_layout.map(|layout| layout.into_channels()));
        let Some(channels) = channels else {
            return unsupported_error("opus: no OpusHead and no channel count");
        };
        Self::single_stream(channels.count(), 0, 0)
    }

    /// symphonia's position of each output channel, which Opus orders as Vorbis does
    /// (RFC 7845 §5.1.1.2). Families other than 0 and 1 define no positions.
    fn positions(&self) -> Result<&'static [Channels]> {
        use Channels as C;
        let positions: &'static [Channels] = match (self.family, self.channels) {
            (0 | 1, 1) => &[C::FRONT_LEFT],
            (0 | 1, 2) => &[C::FRONT_LEFT, C::FRONT_RIGHT],
            (1, 3) => &[C::FRONT_LEFT, C::FRONT_CENTRE, C::FRONT_RIGHT],
            (1, 4) => &[C::FRONT_LEFT, C::FRONT_RIGHT, C::REAR_LEFT, C::REAR_RIGHT],
            (1, 5) => &[C::FRONT_LEFT, C::FRONT_CENTRE, C::FRONT_RIGHT, C::REAR_LEFT, C::REAR_RIGHT],
            (1, 6) => &[C::FRONT_LEFT, C::FRONT_CENTRE, C::FRONT_RIGHT, C::REAR_LEFT, C::REAR_RIGHT, C::LFE1],
            (1, 7) => {
                &[C::FRONT_LEFT, C::FRONT_CENTRE, C::FRONT_RIGHT, C::SIDE_LEFT, C::SIDE_RIGHT, C::REAR_CENTRE, C::LFE1]
            }
            (1, 8) => &[
                C::FRONT_LEFT,
                C::FRONT_CENTRE,
                C::FRONT_RIGHT,
                C::SIDE_LEFT,
                C::SIDE_RIGHT,
                C::REAR_LEFT,
                C::REAR_RIGHT,
                C::LFE1,
            ],
            _ => return unsupported_error("opus: unsupported channel mapping"),
        };
        Ok(positions)
    }
}

/// The plane of each position in an [`AudioBuffer`] with these channels: planes follow the
/// order of the bits in the mask, not the order of the stream.
fn planes(positions: &[Channels]) -> (Channels, Vec<usize>) {
    let mask = positions.iter().fold(Channels::empty(), |mask, position| mask | *position);
    let planes = positions.iter().map(|position| (mask.bits() & (position.bits() - 1)).count_ones() as usize).collect();
    (mask, planes)
}

/// The elementary decoders of one Opus stream.
enum Streams {
    /// Family 0: one stream, mono or stereo.
    Single(Box<opus_rs::OpusDecoder>),
    /// Other families: several streams, routed to the output channels by the mapping table.
    Multi(MultistreamDecoder),
}

impl Streams {
    fn new(head: &OpusHead) -> Result<Self> {
        let streams = if head.family == 0 {
            opus_rs::OpusDecoder::new(RATE as i32, head.channels).map(|decoder| Self::Single(Box::new(decoder)))
        } else {
            let table = ChannelMappingTable {
                channels: head.channels as u8,
                stream_count: head.streams as u8,
                coupled_count: head.coupled_streams as u8,
                mapping: head.mapping.clone(),
            };
            MultistreamDecoder::new(RATE as i32, table).map(Self::Multi)
        };
        streams.or_else(|_| unsupported_error("opus: cannot decode this channel layout"))
    }

    /// Decodes one packet into interleaved `pcm`; samples per channel.
    fn decode(&mut self, packet: &[u8], frame_size: usize, pcm: &mut [f32]) -> std::result::Result<usize, &str> {
        match self {
            Self::Single(decoder) => decoder.decode(packet, frame_size, pcm),
            Self::Multi(decoder) => decoder.decode(packet, frame_size, pcm),
        }
    }
}

/// symphonia's Opus decoder for natter: registered in place of the libopus adapter.
pub(crate) struct OpusDecoder {
    params: CodecParameters,
    head: OpusHead,
    streams: Streams,
    /// For each decoded (interleaved) channel, its plane in `buffer`.
    planes: Vec<usize>,
    /// The OpusHead's output gain as a factor.
    gain: f32,
    /// What is left of the pre-skip, dropped from the next decoded samples.
    pre_skip: usize,
    /// Interleaved output of one packet.
    pcm: Vec<f32>,
    buffer: AudioBuffer<f32>,
}

impl Decoder for OpusDecoder {
    fn try_new(params: &CodecParameters, _options: &DecoderOptions) -> Result<Self> {
        let head = match &params.extra_data {
            Some(extra_data) => OpusHead::parse(extra_data)?,
            None => OpusHead::from_params(params)?,
        };
        let (mask, planes) = planes(head.positions()?);
        Ok(Self {
            params: params.clone(),
            streams: Streams::new(&head)?,
            planes,
            gain: 10f32.powf(f32::from(head.output_gain) / (20.0 * 256.0)),
            pre_skip: head.pre_skip,
            pcm: vec![0.0; MAX_FRAMES * head.channels],
            buffer: AudioBuffer::new(MAX_FRAMES as u64, SignalSpec::new(RATE, mask)),
            head,
        })
    }

    fn supported_codecs() -> &'static [CodecDescriptor] {
        &[support_codec!(CODEC_TYPE_OPUS, "opus", "Opus (opus-rs)")]
    }

    fn reset(&mut self) {
        // opus-rs has no reset: start over with new decoders (the same layout cannot fail).
        if let Ok(streams) = Streams::new(&self.head) {
            self.streams = streams;
        }
    }

    fn codec_params(&self) -> &CodecParameters {
        &self.params
    }

    fn decode(&mut self, packet: &Packet) -> Result<AudioBufferRef<'_>> {
        // An empty packet asks for loss concealment of the packet's duration, as in libopus;
        // otherwise the packet says how long it is, up to the buffer's capacity.
        let frame_size = if packet.data.is_empty() { (packet.dur as usize).min(MAX_FRAMES) } else { MAX_FRAMES };
        let frames = self
            .streams
            .decode(&packet.data, frame_size, &mut self.pcm)
            .map_err(|_| Error::DecodeError("opus: invalid packet"))?;
        let channels = self.planes.len();
        self.buffer.clear();
        self.buffer.render_reserved(Some(frames));
        for (channel, &plane) in self.planes.iter().enumerate() {
            let samples = self.pcm.chunks_exact(channels).map(|frame| frame[channel] * self.gain);
            for (out, sample) in self.buffer.chan_mut(plane).iter_mut().zip(samples) {
                *out = sample;
            }
        }
        // symphonia's Ogg demuxer trims the pre-skip itself only in gapless mode, and its
        // WebM demuxer never does: drop what is left of it, unless the packet already trims as
        // much (gapless mode's trim covers the same samples).
        let skipped = self.pre_skip.min(frames);
        self.pre_skip -= skipped;
        let start = skipped.max(packet.trim_start() as usize);
        self.buffer.trim(start, packet.trim_end() as usize);
        Ok(self.buffer.as_audio_buffer_ref())
    }

    fn finalize(&mut self) -> FinalizeResult {
        FinalizeResult::default()
    }

    fn last_decoded(&self) -> AudioBufferRef<'_> {
        self.buffer.as_audio_buffer_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, pre_skip: u16, gain: i16, family: u8, table: &[u8]) -> Vec<u8> {
        let mut bytes = b"OpusHead".to_vec();
        bytes.extend_from_slice(&[1, channels]);
        bytes.extend_from_slice(&pre_skip.to_le_bytes());
        bytes.extend_from_slice(&48_000u32.to_le_bytes());
        bytes.extend_from_slice(&gain.to_le_bytes());
        bytes.push(family);
        bytes.extend_from_slice(table);
        bytes
    }

    #[test]
    fn reads_a_stereo_head() {
        let parsed = OpusHead::parse(&head(2, 312, -256, 0, &[])).expect("parses");
        assert_eq!(
            parsed,
            OpusHead {
                channels: 2,
                pre_skip: 312,
                output_gain: -256,
                family: 0,
                streams: 1,
                coupled_streams: 1,
                mapping: vec![0, 1]
            }
        );
    }

    #[test]
    fn reads_a_surround_mapping_table() {
        let table = [4, 2, 0, 4, 1, 2, 3, 5];
        let parsed = OpusHead::parse(&head(6, 0, 0, 1, &table)).expect("parses");
        assert_eq!((parsed.streams, parsed.coupled_streams, parsed.mapping), (4, 2, vec![0, 4, 1, 2, 3, 5]));
    }

    #[test]
    fn refuses_malformed_heads() {
        let cases = [
            ("no magic", b"OpusTags\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00".to_vec()),
            ("short", head(1, 0, 0, 0, &[])[..18].to_vec()),
            ("version 1.0", {
                let mut bytes = head(1, 0, 0, 0, &[]);
                bytes[8] = 0x10;
                bytes
            }),
            ("family 0 with 3 channels", head(3, 0, 0, 0, &[])),
            ("zero channels", head(0, 0, 0, 1, &[1, 0])),
            ("no table", head(2, 0, 0, 1, &[])),
            ("truncated table", head(2, 0, 0, 1, &[1, 1, 0])),
            ("more coupled than streams", head(2, 0, 0, 1, &[1, 2, 0, 1])),
        ];
        for (case, bytes) in cases {
            assert!(OpusHead::parse(&bytes).is_err(), "{case}");
        }
    }

    #[test]
    fn places_vorbis_ordered_channels_on_symphonias_planes() {
        let head = OpusHead::parse(&head(6, 0, 0, 1, &[4, 2, 0, 4, 1, 2, 3, 5])).expect("parses");
        let (mask, planes) = planes(head.positions().expect("5.1 has positions"));
        assert_eq!(mask.count(), 6);
        // Stream order FL C FR RL RR LFE; symphonia's planes FL FR C LFE RL RR.
        assert_eq!(planes, [0, 2, 1, 4, 5, 3]);
    }

    #[test]
    fn refuses_mappings_without_positions() {
        let head = OpusHead::parse(&head(2, 0, 0, 255, &[2, 0, 0, 1])).expect("parses");
        assert!(head.positions().is_err());
    }

    fn decoder(extra_data: Vec<u8>) -> OpusDecoder {
        let mut params = CodecParameters::new();
        params.for_codec(CODEC_TYPE_OPUS).with_sample_rate(RATE).with_extra_data(extra_data.into_boxed_slice());
        OpusDecoder::try_new(&params, &DecoderOptions::default()).expect("a decoder")
    }

    /// A 20 ms CELT-only fullband mono frame (TOC config 31, code 0) holding silence.
    fn silent_frame() -> Packet {
        Packet::new_from_slice(0, 0, 960, &[0xF8, 0xFF, 0xFE])
    }

    #[test]
    fn drops_a_pre_skip_longer_than_a_packet() {
        let mut decoder = decoder(head(1, 1500, 0, 0, &[]));
        assert_eq!(decoder.decode(&silent_frame()).expect("decodes").frames(), 0);
        assert_eq!(decoder.decode(&silent_frame()).expect("decodes").frames(), 960 * 2 - 1500);
        assert_eq!(decoder.decode(&silent_frame()).expect("decodes").frames(), 960);
    }

    #[test]
    fn an_empty_packet_is_concealed_for_its_duration() {
        let mut decoder = decoder(head(1, 0, 0, 0, &[]));
        decoder.decode(&silent_frame()).expect("decodes");
        let lost = Packet::new_from_slice(0, 960, 480, &[]);
        assert_eq!(decoder.decode(&lost).expect("conceals").frames(), 480);
        let unknown = Packet::new_from_slice(0, 1440, 0, &[]);
        assert!(matches!(decoder.decode(&unknown), Err(Error::DecodeError(_))));
    }

    #[test]
    fn corrupt_packets_are_decode_errors() {
        let mut decoder = decoder(head(2, 0, 0, 0, &[]));
        // Code 3 (several frames) claiming 63 frames of 20 ms: past the 120 ms limit.
        let packet = Packet::new_from_slice(0, 0, 960, &[0xFB, 0x3F]);
        assert!(matches!(decoder.decode(&packet), Err(Error::DecodeError(_))));
    }

    #[test]
    fn decodes_stereo_to_two_planes_at_48_khz() {
        let mut decoder = decoder(head(2, 0, 0, 0, &[]));
        let decoded = decoder.decode(&silent_frame()).expect("decodes");
        assert_eq!((decoded.spec().rate, decoded.spec().channels.count(), decoded.frames()), (RATE, 2, 960));
    }
}
