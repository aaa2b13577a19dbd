//! Hostile media over real HTTP: audio headers a decoder panics on, Ogg that is not whole, an
//! image within the pixel limit that would decode to hundreds of MB. None may answer 500 or
//! pass as voice or image; the bytes are still stored as a plain file.

use std::path::Path;
use std::process::Command;

use natter_proto::FileView;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::common::{TestApp, TestUser, client_msg_id, spawn_app_with, wav};

async fn send_as(
    app: &TestApp,
    user: &TestUser,
    conversation: &str,
    kind: &str,
    file: &FileView,
) -> crate::common::Resp {
    let body = json!({ "client_msg_id": client_msg_id(), "kind": kind, "file_id": file.id });
    app.send_message(user, conversation, body).await
}

/// [`wav`] with `patches` written over its `fmt ` chunk at their offsets (2: channels, 4: sample
/// rate, 8: byte rate, 14: bits per sample).
fn patched_wav(patches: &[(usize, &[u8])]) -> Vec<u8> {
    let mut bytes = wav(500);
    let fmt = 20;
    for (at, value) in patches {
        bytes[fmt + at..fmt + at + value.len()].copy_from_slice(value);
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wav_headers_with_zero_fields_are_stored_unmeasured_and_refused_as_voice_and_for_transcription() {
    // An engine that is never reached: decoding comes first, and these files do not decode.
    let app = spawn_app_with(|config| {
        config.speech.engine = "openai".into();
        config.speech.openai_base_url = "http://127.0.0.1:9".into();
    })
    .await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let direct = app.make_friends(&alice, &bob).await;
    let cases = [
        // As a writer computing the byte rate from the sample rate makes it: symphonia panicked.
        ("sample rate 0", patched_wav(&[(4, &[0; 4]), (8, &[0; 4])])),
        ("sample rate 0, byte rate kept", patched_wav(&[(4, &[0; 4])])),
        ("0 channels", patched_wav(&[(2, &[0; 2])])),
        ("0 bits", patched_wav(&[(14, &[0; 2])])),
    ];
    for (what, bytes) in cases {
        let file = app.upload_ok(&alice, "memo.wav", "audio/wav", bytes.clone()).await;
        assert_eq!((file.mime.as_str(), file.duration_ms), ("audio/x-wav", None), "{what}: stored, unmeasured");
        send_as(&app, &alice, &direct, "voice", &file).await.expect_error(400, "unsupported_audio");
        send_as(&app, &alice, &direct, "file", &file).await.expect_status(201);

        let form =
            Form::new().part("file", Part::bytes(bytes).file_name("memo.wav").mime_str("audio/wav").expect("mime"));
        let multipart =
            app.api(Method::POST, "/speech/transcriptions").bearer_auth(&alice.access_token).multipart(form);
        app.send(multipart).await.expect_error(400, "unsupported_audio");
        let by_id = app
            .api(Method::POST, "/speech/transcriptions")
            .bearer_auth(&alice.access_token)
            .json(&json!({ "file_id": file.id }));
        app.send(by_id).await.expect_error(400, "unsupported_audio");
    }
    let sound = app.upload_ok(&alice, "memo.wav", "audio/wav", wav(500)).await;
    assert_eq!(sound.duration_ms, Some(500), "the unpatched file is measured");
}

/// One second of a 440 Hz tone as Ogg/Opus, made by sox and opusenc (also needed by the speech
/// tests).
fn ogg_opus() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("natter-ogg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let (wav_path, ogg_path) = (dir.join("tone.wav"), dir.join("tone.ogg"));
    let run = |program: &str, args: &[&Path]| {
        let status = Command::new(program).args(args).status().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(status.success(), "{program}: {status}");
    };
    let sox = Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&wav_path)
        .args(["synth", "1", "sine", "440"])
        .status()
        .expect("cannot run sox");
    assert!(sox.success());
    run("opusenc", &[Path::new("--quiet"), &wav_path, &ogg_path]);
    let bytes = std::fs::read(&ogg_path).expect("the Ogg file");
    let _ = std::fs::remove_dir_all(dir);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_whole_ogg_opus_passes_as_voice() {
    let app = spawn_app_with(|_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let direct = app.make_friends(&alice, &bob).await;
    let ogg = ogg_opus();

    let whole = app.upload_ok(&alice, "tone.ogg", "audio/ogg", ogg.clone()).await;
    assert!(whole.duration_ms.is_some_and(|ms| ms.abs_diff(1000) < 30), "{whole:?}");
    send_as(&app, &alice, &direct, "voice", &whole).await.expect_status(201);

    let mut garbage = b"OggS".to_vec();
    garbage.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let cut_at_the_end = ogg[..ogg.len() - 1].to_vec();
    let cut_in_the_header = ogg[..40].to_vec();
    for (what, bytes) in
        [("garbage", garbage), ("cut off at the end", cut_at_the_end), ("cut off early", cut_in_the_header)]
    {
        let file = app.upload_ok(&alice, "bad.ogg", "audio/ogg", bytes).await;
        assert!(file.mime.starts_with("audio/"), "{what}: {}", file.mime);
        assert_eq!(file.duration_ms, None, "{what}");
        send_as(&app, &alice, &direct, "voice", &file).await.expect_error(400, "unsupported_audio");
    }
}

/// PNG's CRC-32.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Deflate's bit order: values least significant bit first, Huffman codes most significant first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    pending: u64,
    count: u32,
}

impl Bits {
    fn put(&mut self, value: u64, count: u32) {
        self.pending |= value << self.count;
        self.count += count;
        while self.count >= 8 {
            self.out.push(self.pending as u8);
            self.pending >>= 8;
            self.count -= 8;
        }
    }

    fn code(&mut self, code: u32, len: u32) {
        self.put(u64::from(code.reverse_bits() >> (32 - len)), len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            self.out.push(self.pending as u8);
        }
        self.out
    }
}

/// A transparent black `side` × `side` PNG at 16 bits per RGBA channel: a zlib stream of zeros
/// written by hand (one fixed-Huffman block of 258-byte back-references), so no encoder has to
/// chew through the decoded size. 7000 × 7000 is 392 MB decoded, 2.4 MB on the wire.
fn deep_png(side: u32) -> Vec<u8> {
    let raw = u64::from(side) * (1 + u64::from(side) * 8);
    let mut bits = Bits::default();
    bits.put(1, 1); // the final block
    bits.put(1, 2); // fixed Huffman codes
    bits.code(0x30, 8); // literal 0
    let rest = raw - 1;
    for _ in 0..rest / 258 {
        bits.code(0xc5, 8); // length 258 (code 285)
        bits.code(0, 5); // distance 1
    }
    for _ in 0..rest % 258 {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block
    let mut zlib = vec![0x78, 0x01];
    zlib.extend(bits.finish());
    // Adler-32 of zeros: a stays 1, b adds 1 a byte.
    zlib.extend_from_slice(&((((raw % 65_521) as u32) << 16) | 1).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut typed = kind.to_vec();
        typed.extend_from_slice(data);
        png.extend_from_slice(&typed);
        png.extend_from_slice(&crc32(&typed).to_be_bytes());
    };
    let mut header = side.to_be_bytes().to_vec();
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&[16, 6, 0, 0, 0]); // 16 bits, RGBA, deflate, no filter, no interlace
    chunk(b"IHDR", &header);
    chunk(b"IDAT", &zlib);
    chunk(b"IEND", &[]);
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_colour_image_within_the_pixel_limit_is_not_decoded() {
    let small = deep_png(16);
    let decoded = image::load_from_memory(&small).expect("the hand-made PNG is valid");
    assert_eq!((decoded.width(), decoded.height(), decoded.color()), (16, 16, image::ColorType::Rgba16));

    let app = spawn_app_with(|_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let direct = app.make_friends(&alice, &bob).await;
    let bytes = deep_png(7000);
    assert!(bytes.len() < 3 * 1024 * 1024, "{} bytes", bytes.len());
    let file = app.upload_ok(&alice, "deep.png", "image/png", bytes).await;
    assert_eq!(file.mime, "image/png");
    assert_eq!((file.width, file.height, file.thumbnail_id.as_ref()), (None, None, None), "stored, not decoded");
    send_as(&app, &alice, &direct, "image", &file).await.expect_error(400, "file_kind_mismatch");
    send_as(&app, &alice, &direct, "file", &file).await.expect_status(201);
    // The small one is within the limits and is an image.
    let fine = app.upload_ok(&alice, "small.png", "image/png", small).await;
    assert_eq!((fine.width, fine.height), (Some(16), Some(16)));
}
