//! Whisper's vocabulary from the model's `tokenizer.json` (Hugging Face `tokenizers`): the ids of
//! the special tokens the prompt needs, and generated ids decoded back to text.

use std::path::Path;

use anyhow::Context;
use tokenizers::Tokenizer;

pub struct Vocabulary {
    tokenizer: Tokenizer,
}

impl Vocabulary {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let tokenizer =
            Tokenizer::from_file(path).map_err(|e| anyhow::anyhow!("{} is not a tokenizer: {e}", path.display()))?;
        Ok(Self { tokenizer })
    }

    /// The id of a special token such as `<|startoftranscript|>`.
    pub fn special(&self, token: &str) -> anyhow::Result<u32> {
        self.tokenizer.token_to_id(token).with_context(|| format!("the vocabulary has no {token}"))
    }

    /// The text of a special token's id (e.g. `<|de|>`); `None` for an ordinary token.
    pub fn special_text(&self, id: u32) -> Option<String> {
        let text = self.tokenizer.id_to_token(id)?;
        (text.starts_with("<|") && text.ends_with("|>")).then_some(text)
    }

    /// The first special id (`<|endoftext|>`): every id from it up is a special token.
    pub fn first_special(&self) -> anyhow::Result<u32> {
        self.special("<|endoftext|>")
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> anyhow::Result<String> {
        self.tokenizer.decode(ids, true).map_err(|e| anyhow::anyhow!("cannot decode tokens: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_byte_level_tokens_and_skips_special_ones() {
        let dir = std::env::temp_dir().join(format!("natter-vocab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tokenizer.json");
        // Byte-level BPE as Whisper's: "你" is E4 BD A0, GPT-2's chars "ä½ł".
        let file = r#"{"version":"1.0","truncation":null,"padding":null,
            "added_tokens":[{"id":4,"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
                            {"id":5,"content":"<|zh|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
            "normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
            "post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
            "model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":"","end_of_word_suffix":"","fuse_unk":false,
                     "vocab":{"ĠHello":0,"Ġworld":1,"ä½":2,"ł":3},"merges":[]}}"#;
        std::fs::write(&path, file).expect("write");
        let vocabulary = Vocabulary::load(&path).expect("loads");
        assert_eq!(vocabulary.decode(&[5, 0, 1, 4]).expect("decodes"), " Hello world");
        assert_eq!(vocabulary.decode(&[2, 3]).expect("decodes"), "你");
        assert_eq!(vocabulary.special("<|zh|>").expect("special"), 5);
        assert_eq!(vocabulary.special_text(5).as_deref(), Some("<|zh|>"));
        assert_eq!(vocabulary.special_text(0), None);
        assert_eq!(vocabulary.first_special().expect("end"), 4);
        assert!(Vocabulary::load(&dir.join("missing.json")).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
