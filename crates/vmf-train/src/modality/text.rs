//! The text data kind: sentences one per line ([`crate::data::text`]), the sentence
//! VAE of vmf-model's `text` module, batches bucketed by length, and decoded sentences
//! after each epoch.

use std::fmt::Write as _;
use std::path::Path;

use burn::tensor::Device;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use vmf_model::text::{Cell, Decoding, EOS_ID};
use vmf_model::{TextBatch, TextVae, TextVaeConfig, VaeModel};

pub mod sentences;

use super::view::View;
use super::{DataKind, Source, Split};
use crate::config::{DEFAULT_MAX_LENGTH, Modality, TrainConfig};
use crate::data::text::{
    LoadReport, TextOptions, TextSet, TextSplits, find_split, load_sentences, load_text,
};
use crate::error::TrainError;
use crate::seeds::{self, HostNoise};
use sentences::SentenceViews;

/// Default of `model.embed_dim`.
pub const DEFAULT_EMBED_DIM: usize = 100;
/// Batches of similar length are formed within pools of this many batches.
const POOL_BATCHES: usize = 50;
/// Decoder outputs (floats) per evaluation call: 128 MB of logits, a few times that
/// with the softmax's intermediates.
const LOGITS_PER_CALL: usize = 1 << 25;
/// The run folder's copy of the vocabulary.
pub const VOCAB_FILE: &str = "vocab.txt";

/// Loaded sentences with the settings that shape their batches.
pub struct Sentences {
    splits: TextSplits,
    config: TrainConfig,
    /// Words per training sentence (what the buckets sort by).
    train_lengths: Vec<usize>,
}

/// One epoch: batches of training sentence indices, similar lengths together.
pub struct TextEpoch {
    batches: Vec<Vec<usize>>,
}

/// The loader's options from the config.
pub fn text_options(config: &TrainConfig) -> TextOptions {
    let d = &config.data;
    TextOptions {
        vocab_size: d.vocab_size,
        min_count: d.min_count.unwrap_or(1),
        max_length: d.max_length.unwrap_or(DEFAULT_MAX_LENGTH),
        long_sentences: d.long_sentences.unwrap_or_default(),
        train_limit: d.train_limit,
        test_limit: d.test_limit,
    }
}

/// Batches of `size` indices into `lengths`, similar lengths together: a seeded
/// shuffle, then pools of `POOL_BATCHES` (50) batches sorted by length and cut, then the
/// batches shuffled. A pure function of (lengths, size, seed, epoch); the last partial
/// batch is dropped.
pub fn bucketed_batches(
    lengths: &[usize],
    size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    let mut rng = StdRng::seed_from_u64(seeds::derive(seed, "data-order", epoch as u64));
    order.shuffle(&mut rng);
    let mut batches = Vec::with_capacity(lengths.len() / size.max(1));
    for pool in order.chunks_mut(size * POOL_BATCHES) {
        pool.sort_by_key(|&i| lengths[i]);
        batches.extend(
            pool.chunks(size)
                .filter(|b| b.len() == size)
                .map(<[usize]>::to_vec),
        );
    }
    batches.shuffle(&mut StdRng::seed_from_u64(seeds::derive(
        seed,
        "batch-order",
        epoch as u64,
    )));
    batches
}

/// Share of the decoder's positions (L + 1 per sentence of a batch padded to L words)
/// that are padding.
pub fn padding_fraction(lengths: &[usize], batches: &[Vec<usize>]) -> f64 {
    let (mut real, mut total) = (0usize, 0usize);
    for b in batches {
        let l = b.iter().map(|&i| lengths[i]).max().unwrap_or(0);
        total += b.len() * (l + 1);
        real += b.iter().map(|&i| lengths[i] + 1).sum::<usize>();
    }
    1.0 - real as f64 / total.max(1) as f64
}

impl Sentences {
    /// The loaded splits and vocabulary.
    pub fn splits(&self) -> &TextSplits {
        &self.splits
    }

    /// The model for this vocabulary.
    pub fn model_config(&self, config: &TrainConfig) -> TextVaeConfig {
        let m = &config.model;
        TextVaeConfig {
            kind: m.kind,
            vocab: self.splits.vocab.len(),
            embed_dim: m.embed_dim.unwrap_or(DEFAULT_EMBED_DIM),
            hidden: m.hidden[0],
            latent_dim: m.latent_dim,
            cell: m.cell.unwrap_or(Cell::Lstm),
            kappa: config.kappa_mode(),
        }
    }

    fn set(&self, split: Split) -> &TextSet {
        match split {
            Split::Test => &self.splits.test,
            Split::Validation => &self.splits.valid,
        }
    }

    /// Whether the decoder never sees a word (`model.word_dropout = 1`, Inputless):
    /// then evaluation and decoding hide the words too, as training did. Below 1, word
    /// dropout is a training-time noise like dropout, and evaluation sees every word.
    pub fn inputless(&self) -> bool {
        self.config.model.word_dropout >= 1.0
    }

    /// How this run's model decodes sentences of at most `max_length` words.
    pub fn decoding(&self, temperature: Option<f64>) -> Decoding {
        Decoding {
            max_words: self.config.data.max_length.unwrap_or(DEFAULT_MAX_LENGTH),
            temperature,
            inputless: self.inputless(),
        }
    }

    /// The evaluation's batches of `set` as sentence indices: sorted by length, so that
    /// each batch pads little, and cut at `training.eval_batch_size`; a fixed order.
    fn eval_groups(&self, set: &TextSet) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..set.len()).collect();
        order.sort_by_key(|&i| set.sentences[i].len());
        let size = self.config.training.eval_batch_size.max(1);
        order.chunks(size).map(<[usize]>::to_vec).collect()
    }

    /// An evaluation batch of the sentences `ids` of `set`: no word dropout, except
    /// that an Inputless model's inputs are all unknown tokens.
    pub fn batch(&self, set: &TextSet, ids: &[usize], device: &Device) -> TextBatch {
        let rows: Vec<&[u32]> = ids.iter().map(|&i| set.sentences[i].as_slice()).collect();
        let hide = self.inputless();
        TextBatch::new(&rows, |_, _| hide, device)
    }
}

fn describe(name: &str, set: &TextSet, report: &LoadReport) -> String {
    let mut s = format!(
        "{name}: {} sentences, {} tokens (end tokens counted), {:.2}% unknown words",
        set.len(),
        set.tokens(),
        100.0 * set.unknown_rate()
    );
    if report.truncated > 0 {
        let _ = write!(s, ", {} truncated", report.truncated);
    }
    if report.dropped > 0 {
        let _ = write!(s, ", {} dropped as too long", report.dropped);
    }
    if report.blank > 0 {
        let _ = write!(s, ", {} blank lines skipped", report.blank);
    }
    s
}

fn lengths(set: &TextSet) -> Vec<usize> {
    set.sentences.iter().map(Vec::len).collect()
}

impl DataKind for Sentences {
    type Model = TextVae;
    type Epoch = TextEpoch;
    const UNITS: &'static str = "tokens";
    const PER_UNIT: bool = true;
    const LATENT_STATS: bool = true;
    const ACCURACY: bool = true;

    fn load(config: &TrainConfig) -> Result<Self, TrainError> {
        let dir = config.data.folder();
        let (splits, reports) = load_text(&dir, &text_options(config))?;
        eprintln!(
            "text from {}: vocabulary of {} tokens (4 special) from the training split",
            dir.display(),
            splits.vocab.len()
        );
        for (name, set, report) in [
            ("train", &splits.train, &reports[0]),
            ("valid", &splits.valid, &reports[1]),
            ("test", &splits.test, &reports[2]),
        ] {
            eprintln!("  {}", describe(name, set, report));
        }
        let kind = Self {
            train_lengths: lengths(&splits.train),
            splits,
            config: config.clone(),
        };
        let plan = bucketed_batches(
            &kind.train_lengths,
            config.training.batch_size,
            config.seed,
            0,
        );
        eprintln!(
            "  batches of {} bucketed by length: {:.1}% of the decoder's positions are padding",
            config.training.batch_size,
            100.0 * padding_fraction(&kind.train_lengths, &plan)
        );
        Ok(kind)
    }

    fn replace_test(&mut self, source: &Source, limit: Option<usize>) -> Result<(), TrainError> {
        let path = match source {
            Source::Config { config, split } => {
                let stem = match split {
                    Split::Test => "test",
                    Split::Validation => "valid",
                };
                find_split(&config.data.folder(), stem)?
            }
            Source::Path(p) => p.clone(),
        };
        if path.is_dir() {
            return Err(TrainError::Data {
                file: path,
                message: "is a folder: a text run encodes a file of sentences, one per line \
                          (or a config whose data section names them)"
                    .into(),
            });
        }
        // The run's vocabulary and length rule: the words as the model knows them.
        let (set, report) = load_sentences(
            &path,
            &self.splits.vocab,
            &text_options(&self.config),
            limit,
        )?;
        eprintln!("  {}", describe("to encode", &set, &report));
        self.splits.test = set;
        Ok(())
    }

    fn init_model(&self, config: &TrainConfig, device: &Device) -> TextVae {
        self.model_config(config).init(device)
    }

    fn with_decoder_from(
        &self,
        model: TextVae,
        checkpoint: &Path,
        device: &Device,
    ) -> Result<TextVae, TrainError> {
        let bad = |message: String| TrainError::Checkpoint {
            path: checkpoint.to_path_buf(),
            message: format!("model.decoder_from: {message}"),
        };
        let opened = crate::checkpoint::open(checkpoint).map_err(|e| {
            TrainError::Usage(format!(
                "model.decoder_from = {}: {e}",
                checkpoint.display()
            ))
        })?;
        if opened.config.data.dataset.modality() != Modality::Sentences {
            return Err(bad(
                "is a checkpoint of an image run; give a text run's (a language model's) \
                 checkpoint folder"
                    .into(),
            ));
        }
        // The decoder's rows are word ids: the vocabulary must be this run's, word for
        // word (checkpoint::open checked that the folder sits in a run folder).
        let vocab = checkpoint
            .parent()
            .and_then(Path::parent)
            .expect("checked by checkpoint::open")
            .join(VOCAB_FILE);
        let theirs = std::fs::read_to_string(&vocab)
            .map_err(|e| bad(format!("reading {}: {e}", vocab.display())))?;
        if theirs != self.splits.vocab.to_text() {
            return Err(bad(format!(
                "{} is not this run's vocabulary (another training file or other vocabulary \
                 settings): train the language model on this run's data and data settings",
                vocab.display()
            )));
        }
        // Sizes from the source's config; the vocabulary, the same, from here.
        let fresh = self.init_model(&opened.config, device);
        let source = Self::load_weights(fresh, &checkpoint.join(crate::checkpoint::MODEL_FILE))
            .map_err(|e| bad(format!("model: {e}")))?;
        model.with_decoder_of(&source).map_err(bad)
    }

    fn check_run_folder(&self, run_dir: &Path, resuming: bool) -> Result<(), TrainError> {
        let path = run_dir.join(VOCAB_FILE);
        let text = self.splits.vocab.to_text();
        if resuming && let Ok(old) = std::fs::read_to_string(&path) {
            if old != text {
                return Err(TrainError::Data {
                    file: path,
                    message: "the run was trained with another vocabulary (the training file \
                              or the vocabulary settings changed); restore them, or start a \
                              new run with --run-dir"
                        .into(),
                });
            }
            return Ok(());
        }
        std::fs::create_dir_all(run_dir).map_err(TrainError::io("creating", run_dir))?;
        crate::durable::replace(&path, text.as_bytes())
    }

    fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let s = &self.splits;
        h.update(s.vocab.to_text().as_bytes());
        for set in [&s.train, &s.valid, &s.test] {
            h.update((set.len() as u64).to_le_bytes());
            for sentence in &set.sentences {
                h.update((sentence.len() as u32).to_le_bytes());
                h.update(bytemuck::cast_slice::<u32, u8>(sentence));
            }
        }
        format!("{:x}", h.finalize())
    }

    fn upload_training(&mut self, _device: &Device) {
        // Batches are built on the host from word ids: a few kB per step.
    }

    fn epoch(&self, seed: u64, epoch: usize, _device: &Device) -> TextEpoch {
        TextEpoch {
            batches: bucketed_batches(
                &self.train_lengths,
                self.config.training.batch_size,
                seed,
                epoch,
            ),
        }
    }

    fn batches(epoch: &TextEpoch) -> usize {
        epoch.batches.len()
    }

    fn train_batch(
        &self,
        epoch: &TextEpoch,
        b: usize,
        noise: &mut HostNoise,
        device: &Device,
    ) -> TextBatch {
        let set = &self.splits.train;
        let rows: Vec<&[u32]> = epoch.batches[b]
            .iter()
            .map(|&i| set.sentences[i].as_slice())
            .collect();
        let m = &self.config.model;
        let p = m.word_dropout;
        let rng = noise.rng();
        // Each draws only when on, so the latent noise of a run without them is as it
        // was before they existed.
        TextBatch::new(&rows, |_, _| p > 0.0 && rng.random::<f64>() < p, device).with_dropout(
            m.dropout,
            [m.embed_dim.unwrap_or(DEFAULT_EMBED_DIM), m.hidden[0]],
            rng,
        )
    }

    fn eval_batches(&self, split: Split, _seed: u64, device: &Device) -> Option<Vec<TextBatch>> {
        let set = self.set(split);
        Some(
            self.eval_groups(set)
                .iter()
                .map(|ids| self.batch(set, ids, device))
                .collect(),
        )
    }

    fn file_order(&self, split: Split) -> Option<Vec<usize>> {
        Some(self.eval_groups(self.set(split)).concat())
    }

    fn example_text(&self, split: Split, i: usize) -> Option<String> {
        let set = self.set(split);
        set.sentences.get(i).map(|s| self.splits.vocab.decode(s))
    }

    fn rows_per_call(&self, batch: &TextBatch) -> usize {
        // The logits of a call, [rows, L + 1, vocab], stay under LOGITS_PER_CALL floats.
        let positions = batch.lengths.iter().max().map_or(1, |l| l + 1);
        (LOGITS_PER_CALL / (positions * self.splits.vocab.len())).max(1)
    }

    fn units(batch: &TextBatch) -> usize {
        batch.tokens()
    }

    fn recon_accuracy(
        &self,
        model: &TextVae,
        split: Split,
        device: &Device,
    ) -> Result<Option<f64>, TrainError> {
        let set = self.set(split);
        let (mut right, mut total) = (0usize, 0usize);
        let mut rng = StdRng::seed_from_u64(0); // greedy decoding draws nothing
        for ids in &self.eval_groups(set) {
            let batch = self.batch(set, ids, device);
            let longest = batch.lengths.iter().copied().max().unwrap_or(0);
            // One word more than the longest sentence: a decoding that stops earlier
            // stopped at its end token, so every compared position is known.
            let how = Decoding {
                max_words: longest + 1,
                ..self.decoding(None)
            };
            let decoded = model.generate(model.posterior(&batch).location(), how, &mut rng);
            for (&i, d) in ids.iter().zip(&decoded) {
                right += tokens_right(&set.sentences[i], d);
                total += set.sentences[i].len() + 1;
            }
        }
        Ok(Some(right as f64 / total.max(1) as f64))
    }

    fn epoch_outputs(
        &self,
        model: &TextVae,
        config: &TrainConfig,
        epoch: usize,
        device: &Device,
    ) -> Result<(), TrainError> {
        if !config.training.images {
            return Ok(());
        }
        let dir = config.run_dir.join("samples");
        std::fs::create_dir_all(&dir).map_err(TrainError::io("creating", &dir))?;
        let path = dir.join(format!("epoch-{epoch:03}.txt"));
        let views = SentenceViews::new(self, model, device);
        let text = views.reconstruct(5)? + &views.sample(5, config.seed, 1.0)?;
        crate::durable::replace(&path, text.as_bytes())
    }

    fn view(
        &self,
        model: &TextVae,
        view: View,
        out: Option<&Path>,
        device: &Device,
    ) -> Result<(), TrainError> {
        let text = SentenceViews::new(self, model, device).render(view)?;
        match out {
            Some(path) => std::fs::write(path, text).map_err(TrainError::io("writing", path)),
            None => {
                print!("{text}");
                Ok(())
            }
        }
    }
}

/// How many of the sentence's tokens (its words, then the end token) `decoded` (words
/// up to its end token) has at the same position.
pub fn tokens_right(sentence: &[u32], decoded: &[u32]) -> usize {
    let end = [EOS_ID];
    let target = sentence.iter().chain(&end);
    let got = decoded.iter().chain(&end);
    target.zip(got).filter(|(a, b)| a == b).count()
}
