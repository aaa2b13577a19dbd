//! Whisper's transformer (OpenAI's `whisper/model.py`) on candle's tensors and layers.
//!
//! candle-transformers has a Whisper model, but its decoder recomputes every earlier token's
//! self-attention and rescales and copies the cached cross-attention keys and values at every
//! generated token: 45 ms a token for `tiny.en` on this project's machines, more than the
//! encoder. This one keeps a key/value cache per layer (keys pre-transposed, so a step is two
//! small matrix products per layer), which makes a token ~3 ms, and it spares every natter build
//! compiling candle-transformers' hundred other models.

use candle_core::{D, Device, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, Linear, Module};

use crate::convert::Dimensions;

type Weights = std::collections::HashMap<String, Tensor>;

fn get(weights: &Weights, name: &str) -> Result<Tensor> {
    weights.get(name).cloned().ok_or_else(|| candle_core::Error::Msg(format!("the model lacks {name}")))
}

fn linear(weights: &Weights, prefix: &str, bias: bool) -> Result<Linear> {
    let bias = if bias { Some(get(weights, &format!("{prefix}.bias"))?) } else { None };
    Ok(Linear::new(get(weights, &format!("{prefix}.weight"))?, bias))
}

fn layer_norm(weights: &Weights, prefix: &str) -> Result<LayerNorm> {
    Ok(LayerNorm::new(get(weights, &format!("{prefix}.weight"))?, get(weights, &format!("{prefix}.bias"))?, 1e-5))
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn load(weights: &Weights, prefix: &str, heads: usize) -> Result<Self> {
        Ok(Self {
            query: linear(weights, &format!("{prefix}.q_proj"), true)?,
            key: linear(weights, &format!("{prefix}.k_proj"), false)?,
            value: linear(weights, &format!("{prefix}.v_proj"), true)?,
            out: linear(weights, &format!("{prefix}.out_proj"), true)?,
            heads,
        })
    }

    /// `(batch, n, d)` → `(batch, heads, n, d / heads)`, contiguous.
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, n, d) = x.dims3()?;
        x.reshape((batch, n, self.heads, d / self.heads))?.transpose(1, 2)?.contiguous()
    }

    /// Queries scaled by `1 / sqrt(d_head)` (Whisper scales queries and keys by its fourth root
    /// each: the same product).
    fn queries(&self, x: &Tensor) -> Result<Tensor> {
        let q = self.split(&self.query.forward(x)?)?;
        let d_head = q.dim(D::Minus1)?;
        q * (d_head as f64).powf(-0.5)
    }

    /// Keys transposed for the product, `(batch, heads, d_head, n)`, and values.
    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let keys = self.split(&self.key.forward(x)?)?.transpose(2, 3)?.contiguous()?;
        Ok((keys, self.split(&self.value.forward(x)?)?))
    }

    fn attend(&self, q: &Tensor, keys_t: &Tensor, values: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let mut scores = q.matmul(keys_t)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let mixed = weights.matmul(values)?.transpose(1, 2)?.flatten_from(2)?;
        self.out.forward(&mixed)
    }
}

struct Mlp {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn load(weights: &Weights, prefix: &str) -> Result<Self> {
        Ok(Self {
            norm: layer_norm(weights, &format!("{prefix}.final_layer_norm"))?,
            fc1: linear(weights, &format!("{prefix}.fc1"), true)?,
            fc2: linear(weights, &format!("{prefix}.fc2"), true)?,
        })
    }

    fn residual(&self, x: &Tensor) -> Result<Tensor> {
        x + self.fc2.forward(&self.fc1.forward(&self.norm.forward(x)?)?.gelu_erf()?)?
    }
}

struct EncoderLayer {
    norm: LayerNorm,
    attention: Attention,
    mlp: Mlp,
}

struct DecoderLayer {
    self_norm: LayerNorm,
    self_attention: Attention,
    cross_norm: LayerNorm,
    cross_attention: Attention,
    mlp: Mlp,
}

/// The cache of one transcription: each decoder layer's self-attention keys and values so far,
/// and its cross-attention keys and values of the audio.
pub struct DecoderState {
    own: Vec<Option<(Tensor, Tensor)>>,
    audio: Vec<(Tensor, Tensor)>,
    position: usize,
}

impl DecoderState {
    pub fn position(&self) -> usize {
        self.position
    }
}

pub struct Whisper {
    pub dims: Dimensions,
    conv1: Conv1d,
    conv2: Conv1d,
    encoder_positions: Tensor,
    encoder_layers: Vec<EncoderLayer>,
    encoder_norm: LayerNorm,
    token_embedding: Tensor,
    /// The token embedding transposed, `(d_model, vocab)`, contiguous: the logits' matrix.
    logits_weight: Tensor,
    decoder_positions: Tensor,
    decoder_layers: Vec<DecoderLayer>,
    decoder_norm: LayerNorm,
}

impl Whisper {
    pub fn load(weights: &Weights, dims: Dimensions) -> Result<Self> {
        let conv = |name: &str, stride| -> Result<Conv1d> {
            let config = Conv1dConfig { padding: 1, stride, dilation: 1, groups: 1, cudnn_fwd_algo: None };
            let prefix = format!("model.encoder.{name}");
            Ok(Conv1d::new(
                get(weights, &format!("{prefix}.weight"))?,
                Some(get(weights, &format!("{prefix}.bias"))?),
                config,
            ))
        };
        let encoder_positions = match weights.get("model.encoder.embed_positions.weight") {
            Some(table) => table.clone(),
            None => sinusoids(dims.max_source_positions, dims.d_model)?,
        };
        let encoder_layers = (0..dims.encoder_layers)
            .map(|i| {
                let prefix = format!("model.encoder.layers.{i}");
                Ok(EncoderLayer {
                    norm: layer_norm(weights, &format!("{prefix}.self_attn_layer_norm"))?,
                    attention: Attention::load(weights, &format!("{prefix}.self_attn"), dims.encoder_attention_heads)?,
                    mlp: Mlp::load(weights, &prefix)?,
                })
            })
            .collect::<Result<_>>()?;
        let decoder_layers = (0..dims.decoder_layers)
            .map(|i| {
                let prefix = format!("model.decoder.layers.{i}");
                let heads = dims.decoder_attention_heads;
                Ok(DecoderLayer {
                    self_norm: layer_norm(weights, &format!("{prefix}.self_attn_layer_norm"))?,
                    self_attention: Attention::load(weights, &format!("{prefix}.self_attn"), heads)?,
                    cross_norm: layer_norm(weights, &format!("{prefix}.encoder_attn_layer_norm"))?,
                    cross_attention: Attention::load(weights, &format!("{prefix}.encoder_attn"), heads)?,
                    mlp: Mlp::load(weights, &prefix)?,
                })
            })
            .collect::<Result<_>>()?;
        let token_embedding = get(weights, "model.decoder.embed_tokens.weight")?;
        Ok(Self {
            conv1: conv("conv1", 1)?,
            conv2: conv("conv2", 2)?,
            encoder_positions,
            encoder_layers,
            encoder_norm: layer_norm(weights, "model.encoder.layer_norm")?,
            logits_weight: token_embedding.t()?.contiguous()?,
            token_embedding,
            decoder_positions: get(weights, "model.decoder.embed_positions.weight")?,
            decoder_layers,
            decoder_norm: layer_norm(weights, "model.decoder.layer_norm")?,
            dims,
        })
    }

    /// The audio's encoding, `(1, frames / 2, d_model)`, from log-mel features `(1, n_mels, frames)`.
    pub fn encode(&self, mel: &Tensor) -> Result<Tensor> {
        let x = self.conv1.forward(mel)?.gelu_erf()?;
        let x = self.conv2.forward(&x)?.gelu_erf()?.transpose(1, 2)?;
        let positions = self.encoder_positions.narrow(0, 0, x.dim(1)?)?;
        let mut x = x.broadcast_add(&positions)?;
        for layer in &self.encoder_layers {
            let normed = layer.norm.forward(&x)?;
            let (keys, values) = layer.attention.keys_values(&normed)?;
            let attended = layer.attention.attend(&layer.attention.queries(&normed)?, &keys, &values, None)?;
            x = layer.mlp.residual(&(x + attended)?)?;
        }
        self.encoder_norm.forward(&x)
    }

    /// A fresh decoder state for `audio` (the cross-attention keys and values, computed once).
    pub fn start(&self, audio: &Tensor) -> Result<DecoderState> {
        let audio =
            self.decoder_layers.iter().map(|layer| layer.cross_attention.keys_values(audio)).collect::<Result<_>>()?;
        Ok(DecoderState { own: vec![None; self.decoder_layers.len()], audio, position: 0 })
    }

    /// Feeds `tokens` (the prompt, then one token at a time) and returns the logits of the next
    /// token over the vocabulary.
    pub fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Vec<f32>> {
        let device = &Device::Cpu;
        let n = tokens.len();
        let start = state.position;
        if start + n > self.dims.max_target_positions {
            return Err(candle_core::Error::Msg("the transcript is longer than the model's context".into()));
        }
        let ids = Tensor::new(tokens, device)?;
        let embedded = self.token_embedding.index_select(&ids, 0)?;
        let mut x = embedded.broadcast_add(&self.decoder_positions.narrow(0, start, n)?)?.unsqueeze(0)?;
        // Causal mask over (new tokens × all tokens so far), needed only when several come at once.
        let mask = if n > 1 {
            let values: Vec<f32> = (0..n)
                .flat_map(|i| (0..start + n).map(move |j| if j > start + i { f32::NEG_INFINITY } else { 0.0 }))
                .collect();
            Some(Tensor::from_vec(values, (n, start + n), device)?)
        } else {
            None
        };
        for (i, layer) in self.decoder_layers.iter().enumerate() {
            let normed = layer.self_norm.forward(&x)?;
            let (new_keys, new_values) = layer.self_attention.keys_values(&normed)?;
            let (keys, values) = match state.own[i].take() {
                Some((keys, values)) => {
                    (Tensor::cat(&[&keys, &new_keys], 3)?, Tensor::cat(&[&values, &new_values], 2)?)
                }
                None => (new_keys, new_values),
            };
            let queries = layer.self_attention.queries(&normed)?;
            x = (&x + layer.self_attention.attend(&queries, &keys, &values, mask.as_ref())?)?;
            state.own[i] = Some((keys, values));

            let (audio_keys, audio_values) = &state.audio[i];
            let queries = layer.cross_attention.queries(&layer.cross_norm.forward(&x)?)?;
            x = (&x + layer.cross_attention.attend(&queries, audio_keys, audio_values, None)?)?;
            x = layer.mlp.residual(&x)?;
        }
        state.position += n;
        let last = self.decoder_norm.forward(&x.narrow(1, n - 1, 1)?)?.squeeze(0)?;
        last.matmul(&self.logits_weight)?.squeeze(0)?.to_vec1()
    }
}

/// Whisper's sinusoidal position table for the encoder (`sinusoids` in `model.py`).
fn sinusoids(length: usize, channels: usize) -> Result<Tensor> {
    let half = channels / 2;
    let increment = (10_000f64).ln() / (half as f64 - 1.0);
    let mut table = vec![0f32; length * channels];
    for t in 0..length {
        for c in 0..half {
            let angle = t as f64 * (-increment * c as f64).exp();
            table[t * channels + c] = angle.sin() as f32;
            table[t * channels + half + c] = angle.cos() as f32;
        }
    }
    Tensor::from_vec(table, (length, channels), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoids_start_with_sin_then_cos() {
        let table = sinusoids(3, 4).expect("table").to_vec2::<f32>().expect("2d");
        assert_eq!(table[0], vec![0.0, 0.0, 1.0, 1.0]);
        assert!((table[1][0] - 1f32.sin()).abs() < 1e-6);
        assert!((table[1][2] - 1f32.cos()).abs() < 1e-6);
        // The second channel's rate is 1 / 10000 (half = 2: increment = ln(10000)).
        assert!((table[2][1] - (2.0f32 / 10_000.0).sin()).abs() < 1e-6);
    }
}
