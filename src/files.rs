//! The files of a model folder in the Hugging Face Hub's layout, and the checked checkpoint built
//! from them. The browser hands us bytes; natively we read a folder.

use crate::config::Config;
use crate::error::Result;
use crate::tokenizer::{NliTokenizer, TokenizerFiles};
use crate::weights::{WeightBytes, Weights};

/// The raw bytes of a model folder's files (a clone shares the weights' bytes).
#[derive(Clone)]
pub struct ModelFiles {
    pub config_json: Vec<u8>,
    pub model_safetensors: WeightBytes,
    pub tokenizer_json: Option<Vec<u8>>,
    pub vocab_txt: Option<Vec<u8>>,
    /// RoBERTa's older layout: `vocab.json` and `merges.txt`.
    pub vocab_json: Option<Vec<u8>>,
    pub merges_txt: Option<Vec<u8>>,
    pub tokenizer_config_json: Option<Vec<u8>>,
}

impl ModelFiles {
    /// The tokenizer's files, borrowed.
    pub fn tokenizer_files(&self) -> TokenizerFiles<'_> {
        TokenizerFiles {
            tokenizer_json: self.tokenizer_json.as_deref(),
            vocab_txt: self.vocab_txt.as_deref(),
            vocab_json: self.vocab_json.as_deref(),
            merges_txt: self.merges_txt.as_deref(),
            tokenizer_config: self.tokenizer_config_json.as_deref(),
        }
    }
}

/// Config, weights and tokenizer of one model, checked against each other.
pub struct Checkpoint {
    pub config: Config,
    pub weights: Weights,
    pub tokenizer: NliTokenizer,
}

impl Checkpoint {
    /// Parses and checks everything; nothing runs before this succeeds.
    pub fn load(files: ModelFiles) -> Result<Self> {
        let config = Config::from_json(&files.config_json)?;
        let tokenizer = NliTokenizer::new(files.tokenizer_files(), &config)?;
        let weights = Weights::from_safetensors(files.model_safetensors, &config)?;
        Ok(Checkpoint { config, weights, tokenizer })
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::io::Read;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::error::Error;

    impl ModelFiles {
        /// Reads a model folder: `config.json`, `model.safetensors`, and `tokenizer.json`,
        /// `vocab.txt`, or `vocab.json` + `merges.txt` (+ optional `tokenizer_config.json`).
        pub fn from_dir(dir: &Path) -> Result<Self> {
            let shown = dir.display().to_string();
            let weights_path = dir.join("model.safetensors");
            if !weights_path.exists() {
                if dir.join("pytorch_model.bin").exists() {
                    return Err(Error::PytorchOnly { dir: shown });
                }
                return Err(Error::MissingFile { dir: shown, file: "model.safetensors" });
            }
            if !dir.join("config.json").exists() {
                return Err(Error::MissingFile { dir: shown, file: "config.json" });
            }
            let tokenizer_json = read_optional(&dir.join("tokenizer.json"))?;
            let vocab_txt = read_optional(&dir.join("vocab.txt"))?;
            let vocab_json = read_optional(&dir.join("vocab.json"))?;
            let merges_txt = read_optional(&dir.join("merges.txt"))?;
            if tokenizer_json.is_none() && vocab_txt.is_none() && vocab_json.is_none() {
                return Err(Error::MissingTokenizer { dir: shown });
            }
            Ok(ModelFiles {
                config_json: read(&dir.join("config.json"))?,
                model_safetensors: Arc::new(read(&weights_path)?),
                tokenizer_json,
                vocab_txt,
                vocab_json,
                merges_txt,
                tokenizer_config_json: read_optional(&dir.join("tokenizer_config.json"))?,
            })
        }
    }

    /// The most bytes each file may have: far above any model we run, far below what would
    /// exhaust memory (a hostile folder can hold a 100 GB sparse file).
    fn size_limit(path: &Path) -> u64 {
        match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => 16 << 30,
            _ => 256 << 20,
        }
    }

    /// Reads a regular file of a sane size. `/dev/zero` or a FIFO would be read forever (or
    /// block on open), so only regular files are opened; a file that grows past its limit while
    /// being read is refused too.
    fn read(path: &Path) -> Result<Vec<u8>> {
        let shown = || path.display().to_string();
        let io = |source| Error::Io { path: shown(), source };
        let (meta, limit) = (std::fs::metadata(path).map_err(io)?, size_limit(path));
        let bad = |reason: String| Error::BadFile { path: shown(), reason };
        if !meta.is_file() {
            return Err(bad("not a regular file (a device, FIFO or folder cannot be a model file)".into()));
        }
        if meta.len() > limit {
            return Err(bad(format!("{} bytes, over the {limit}-byte limit for this file", meta.len())));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut bytes)).map_err(io)?;
        if bytes.len() as u64 > limit {
            return Err(bad(format!("grew past the {limit}-byte limit while being read")));
        }
        Ok(bytes)
    }

    fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
        if path.exists() { read(path).map(Some) } else { Ok(None) }
    }
}

impl Checkpoint {
    /// Loads a model folder from disk.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: &std::path::Path) -> Result<Self> {
        Self::load(ModelFiles::from_dir(dir)?)
    }
}
