//! Measures decoding + transcription of one audio file with the embedded Whisper engines: the
//! default (candle) and, in a build with `--features ctranslate2`, CTranslate2, side by side.
//!
//! `cargo run --release -p natter-speech --example speech_bench [--features ctranslate2] --
//! MODEL_DIR AUDIO_FILE [RUNS] [THREADS] [LANGUAGE]` (the maths crates are built with opt-level 3 even in
//! the dev profile).

use std::time::Instant;

use natter_core::speech::{AudioDecoder, SAMPLE_RATE, SpeechError, Transcript};
use natter_speech::{SymphoniaDecoder, WhisperEngine};

type Transcribe = Box<dyn Fn(&[f32]) -> Result<Transcript, SpeechError>>;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model), Some(audio)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: speech_bench MODEL_DIR AUDIO_FILE [RUNS] [THREADS] [LANGUAGE]");
    };
    let runs: usize = args.get(2).map(|r| r.parse()).transpose()?.unwrap_or(5);
    let threads: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(0);
    // A language hint for multilingual models (e.g. `zh`); none: detected.
    let language = args.get(4).cloned();
    let bytes = std::fs::read(audio)?;
    let dir = std::path::Path::new(model);

    let mut engines: Vec<(&str, Transcribe)> = Vec::new();
    let started = Instant::now();
    let candle = WhisperEngine::load(dir, threads)?;
    println!("candle: model load {} ms", started.elapsed().as_millis());
    let hint = language.clone();
    engines.push(("candle", Box::new(move |samples| candle.transcribe_blocking(samples, hint.as_deref()))));
    #[cfg(feature = "ctranslate2")]
    {
        let started = Instant::now();
        let ct2 = natter_speech::Ct2WhisperEngine::load(dir, threads)?;
        println!("ctranslate2: model load {} ms", started.elapsed().as_millis());
        let hint = language.clone();
        engines.push(("ctranslate2", Box::new(move |samples| ct2.transcribe_blocking(samples, hint.as_deref()))));
    }

    for (name, engine) in &engines {
        let mut times = Vec::new();
        for run in 0..=runs {
            let cpu_before = cpu_ms();
            let started = Instant::now();
            let samples = SymphoniaDecoder.decode(&bytes, 600_000)?;
            let decoded = started.elapsed();
            let transcript = engine(&samples)?;
            let total = started.elapsed();
            let audio_ms = samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE);
            let cpu = cpu_ms().zip(cpu_before).map(|(after, before)| after - before);
            let label = if run == 0 { "warm-up".to_string() } else { format!("run {run}") };
            println!(
                "{name} {label}: {audio_ms} ms of audio: decode {} ms, total {} ms (CPU time {} ms): {:?} ({:?})",
                decoded.as_millis(),
                total.as_millis(),
                cpu.map_or("?".into(), |c| c.to_string()),
                transcript.text,
                transcript.language.unwrap_or_default(),
            );
            if run > 0 {
                times.push(total.as_millis());
            }
        }
        times.sort_unstable();
        if let (Some(min), Some(max)) = (times.first(), times.last()) {
            println!(
                "{name}: decode + transcribe over {runs} runs: min {min} ms, median {} ms, max {max} ms",
                times[times.len() / 2]
            );
        }
    }
    println!("load average: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    Ok(())
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, 100 ticks per second), so a
/// run on a busy machine can be told apart from a slow one.
fn cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10)
}
