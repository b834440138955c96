//! The text data kind's modules: a sentence VAE with a recurrent encoder whose final
//! state parameterises q(z | x) and an autoregressive decoder conditioned on z, as in
//! Xu & Durrett (2018): z sets the decoder's initial state and joins the input of
//! every step; teacher forcing; softmax over the vocabulary.

pub mod rnn;

use burn::module::{Module, ModuleVisitor};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, softmax, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, RngExt};

use crate::kappa::{KappaHead, KappaMode};
use crate::latent::{ModelKind, Posterior};
use crate::vae::{Rows, VaeModel};
pub use rnn::{Cell, Rnn, RnnConfig, RnnState};

/// Id of the padding token: positions after a sentence's end.
pub const PAD_ID: u32 = 0;
/// Id of the begin token: the decoder's first input.
pub const BOS_ID: u32 = 1;
/// Id of the end token: the decoder's last target.
pub const EOS_ID: u32 = 2;
/// Id of the unknown token: words outside the vocabulary and dropped decoder inputs.
pub const UNK_ID: u32 = 3;

/// A batch of sentences, padded to its longest (L words), on the device.
#[derive(Debug, Clone)]
pub struct TextBatch {
    /// Encoder input, the words: `[batch, L]`, [`PAD_ID`] after each sentence.
    pub words: Tensor<2, Int>,
    /// Position of each sentence's last word (its length - 1): `[batch]`.
    pub last: Tensor<1, Int>,
    /// Decoder input: begin token, then the words (some replaced by [`UNK_ID`] under
    /// word dropout): `[batch, L + 1]`.
    pub inputs: Tensor<2, Int>,
    /// Decoder targets: the words, then the end token: `[batch, L + 1]`.
    pub targets: Tensor<2, Int>,
    /// 1 at the targets of the sentence, 0 at padding: `[batch, L + 1]`.
    pub mask: Tensor<2>,
    /// Words per sentence, on the host (the targets per row are one more).
    pub lengths: Vec<usize>,
    /// Dropout masks of a training batch ([`TextBatch::with_dropout`]); `None` in
    /// evaluation.
    pub dropout: Option<DropoutMasks>,
}

/// Dropout of one training batch, drawn on the host like every other noise of a run
/// (so a resumed run and every backend draw the same): each entry is 0 with
/// probability p, else 1 / (1 - p), so a unit's expected value is unchanged and
/// evaluation runs without masks. Where Xu & Durrett (2018) apply dropout: the word
/// embeddings that enter the encoder and the decoder, and the decoder's outputs before
/// the softmax layer.
#[derive(Debug, Clone)]
pub struct DropoutMasks {
    /// Encoder input embeddings: `[batch, L, embed]`.
    pub encoder: Tensor<3>,
    /// Decoder input embeddings: `[batch, L + 1, embed]`.
    pub decoder: Tensor<3>,
    /// Decoder outputs: `[batch, L + 1, hidden]`.
    pub output: Tensor<3>,
}

impl DropoutMasks {
    /// Masks for `batch` rows of `words` words, embeddings of `embed` and hidden states
    /// of `hidden` units, at drop probability `p` in [0, 1), drawing from `rng`.
    pub fn draw<R: Rng + ?Sized>(
        [batch, words, embed, hidden]: [usize; 4],
        p: f64,
        rng: &mut R,
        device: &Device,
    ) -> Self {
        let keep = (1.0 / (1.0 - p)) as f32;
        let mut mask = |shape: [usize; 3]| {
            let v: Vec<f32> = (0..shape.iter().product::<usize>())
                .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
                .collect();
            Tensor::<3>::from_data(TensorData::new(v, shape), device)
        };
        Self {
            encoder: mask([batch, words, embed]),
            decoder: mask([batch, words + 1, embed]),
            output: mask([batch, words + 1, hidden]),
        }
    }

    fn map(&self, f: impl Fn(&Tensor<3>) -> Tensor<3>) -> Self {
        Self {
            encoder: f(&self.encoder),
            decoder: f(&self.decoder),
            output: f(&self.output),
        }
    }
}

fn apply(x: Tensor<3>, mask: Option<&Tensor<3>>) -> Tensor<3> {
    match mask {
        Some(m) => x * m.clone(),
        None => x,
    }
}

impl TextBatch {
    /// The batch of `sentences` (word ids, no begin or end token, each at least one
    /// word). `drop(row, position)` says whether the decoder input word at that place
    /// is replaced by the unknown token (word dropout); it is called once per word, in
    /// row-major order.
    pub fn new(
        sentences: &[&[u32]],
        mut drop: impl FnMut(usize, usize) -> bool,
        device: &Device,
    ) -> Self {
        let b = sentences.len();
        let l = sentences.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
        let mut words = vec![PAD_ID as i32; b * l];
        let mut last = vec![0i32; b];
        let mut inputs = vec![PAD_ID as i32; b * (l + 1)];
        let mut targets = vec![PAD_ID as i32; b * (l + 1)];
        let mut mask = vec![0f32; b * (l + 1)];
        for (r, s) in sentences.iter().enumerate() {
            last[r] = s.len().max(1) as i32 - 1;
            inputs[r * (l + 1)] = BOS_ID as i32;
            for (t, &w) in s.iter().enumerate() {
                words[r * l + t] = w as i32;
                let dropped = drop(r, t);
                inputs[r * (l + 1) + t + 1] = if dropped { UNK_ID } else { w } as i32;
                targets[r * (l + 1) + t] = w as i32;
            }
            targets[r * (l + 1) + s.len()] = EOS_ID as i32;
            mask[r * (l + 1)..r * (l + 1) + s.len() + 1].fill(1.0);
        }
        let int2 = |v: Vec<i32>, cols: usize| {
            Tensor::<2, Int>::from_data(TensorData::new(v, [b, cols]), device)
        };
        Self {
            words: int2(words, l),
            last: Tensor::from_data(TensorData::new(last, [b]), device),
            inputs: int2(inputs, l + 1),
            targets: int2(targets, l + 1),
            mask: Tensor::from_data(TensorData::new(mask, [b, l + 1]), device),
            lengths: sentences.iter().map(|s| s.len()).collect(),
            dropout: None,
        }
    }

    /// The batch with dropout at probability `p` in [0, 1) for a model of `embed`-wide
    /// embeddings and `hidden` units (see [`DropoutMasks`]); unchanged (and nothing
    /// drawn from `rng`) when `p` is 0.
    pub fn with_dropout<R: Rng + ?Sized>(
        mut self,
        p: f64,
        [embed, hidden]: [usize; 2],
        rng: &mut R,
    ) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "dropout probability {p} outside [0, 1)"
        );
        if p > 0.0 {
            let [b, l] = self.words.dims();
            self.dropout = Some(DropoutMasks::draw(
                [b, l, embed, hidden],
                p,
                rng,
                &self.words.device(),
            ));
        }
        self
    }

    /// Tokens the decoder predicts: the words and one end token per sentence.
    pub fn tokens(&self) -> usize {
        self.lengths.iter().map(|l| l + 1).sum()
    }
}

fn repeat_int(t: &Tensor<2, Int>, k: usize) -> Tensor<2, Int> {
    let [b, l] = t.dims();
    t.clone()
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, k)
        .reshape([b * k, l])
}

impl Rows for TextBatch {
    fn rows(&self) -> usize {
        self.lengths.len()
    }

    fn slice_rows(&self, rows: std::ops::Range<usize>) -> Self {
        Self {
            words: self.words.clone().slice(rows.clone()),
            last: self.last.clone().slice(rows.clone()),
            inputs: self.inputs.clone().slice(rows.clone()),
            targets: self.targets.clone().slice(rows.clone()),
            mask: self.mask.clone().slice(rows.clone()),
            lengths: self.lengths[rows.clone()].to_vec(),
            dropout: self
                .dropout
                .as_ref()
                .map(|d| d.map(|m| m.clone().slice(rows.clone()))),
        }
    }

    fn repeat_rows(&self, k: usize) -> Self {
        let b = self.rows();
        Self {
            words: repeat_int(&self.words, k),
            last: self
                .last
                .clone()
                .unsqueeze_dim::<2>(1)
                .repeat_dim(1, k)
                .reshape([b * k]),
            inputs: repeat_int(&self.inputs, k),
            targets: repeat_int(&self.targets, k),
            mask: self.mask.repeat_rows(k),
            lengths: self
                .lengths
                .iter()
                .flat_map(|&l| std::iter::repeat_n(l, k))
                .collect(),
            dropout: self.dropout.as_ref().map(|d| {
                d.map(|m| {
                    let [b, t, w] = m.dims();
                    m.clone()
                        .unsqueeze_dim::<4>(1)
                        .repeat_dim(1, k)
                        .reshape([b * k, t, w])
                })
            }),
        }
    }
}

/// Builds a [`TextVae`].
#[derive(Debug, Clone, PartialEq)]
pub struct TextVaeConfig {
    /// Which latent family; [`ModelKind::Lm`] is the decoder alone (the encoder, head
    /// and z layers are built but never used, so they never change).
    pub kind: ModelKind,
    /// Vocabulary size, the four special tokens included.
    pub vocab: usize,
    /// Word embedding size (shared by encoder and decoder).
    pub embed_dim: usize,
    /// Hidden size of the encoder and the decoder.
    pub hidden: usize,
    /// Latent dimension d (ambient dimension of the sphere for vMF).
    pub latent_dim: usize,
    /// LSTM or GRU.
    pub cell: Cell,
    /// How kappa is set (vMF).
    pub kappa: KappaMode,
}

impl TextVaeConfig {
    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> TextVae {
        let (h, d) = (self.hidden, self.latent_dim);
        // The decoder's initial state from z: h0 (and c0 for the LSTM).
        let states = match self.cell {
            Cell::Lstm => 2 * h,
            Cell::Gru => h,
        };
        let rnn = |d_input| {
            RnnConfig {
                cell: self.cell,
                d_input,
                d_hidden: h,
            }
            .init(device)
        };
        TextVae {
            embedding: EmbeddingConfig::new(self.vocab, self.embed_dim).init(device),
            encoder: rnn(self.embed_dim),
            head: LinearConfig::new(
                h,
                (self.kind.head_width(d) + self.kappa.head_columns()).max(1),
            )
            .init(device),
            init_state: LinearConfig::new(d, states).init(device),
            latent_input: LinearConfig::new(d, self.cell.gates() * h)
                .with_bias(false)
                .init(device),
            decoder: rnn(self.embed_dim),
            output: LinearConfig::new(h, self.vocab).init(device),
            kappa: KappaHead::new(self.kappa, device),
            kind: self.kind,
            latent_dim: d,
        }
    }
}

/// See [`TextVaeConfig`]. Its batches are [`TextBatch`]es.
#[derive(Module, Debug)]
pub struct TextVae {
    embedding: Embedding,
    encoder: Rnn,
    head: Linear,
    init_state: Linear,
    /// z's share of every decoder step's input: [embedding; z] W = embedding W_e + z
    /// W_z, with z W_z computed once per sentence instead of concatenating z to every
    /// step.
    latent_input: Linear,
    decoder: Rnn,
    output: Linear,
    kappa: KappaHead,
    #[module(skip)]
    kind: ModelKind,
    #[module(skip)]
    latent_dim: usize,
}

impl TextVae {
    /// The encoder's hidden state after each sentence's last word: `[batch, hidden]`.
    pub fn encode(&self, x: &TextBatch) -> Tensor<2> {
        let [b, _] = x.words.dims();
        let device = x.words.device();
        let emb = apply(
            self.embedding.forward(x.words.clone()), // [b, L, e]
            x.dropout.as_ref().map(|d| &d.encoder),
        );
        let out = self
            .encoder
            .forward(emb, None, self.encoder.zero_state(b, &device)); // [b, L, h]
        let h = self.encoder.d_hidden();
        let idx = x.last.clone().reshape([b, 1, 1]).repeat_dim(2, h); // [b, 1, h]
        out.gather(1, idx).reshape([b, h])
    }

    /// The decoder's state before the first word, and z's share of every step's input
    /// (none for the language model, which does not read z).
    fn start(&self, z: Tensor<2>) -> (RnnState, Option<Tensor<2>>) {
        if self.kind == ModelKind::Lm {
            let [b, _] = z.dims();
            return (self.decoder.zero_state(b, &z.device()), None);
        }
        let h = self.decoder.d_hidden();
        let s = self.init_state.forward(z.clone());
        let [b, _] = s.dims();
        let state = match self.decoder.cell() {
            Cell::Lstm => RnnState {
                hidden: tanh(s.clone().slice([0..b, 0..h])),
                cell: Some(s.slice([0..b, h..2 * h])),
            },
            Cell::Gru => RnnState {
                hidden: tanh(s),
                cell: None,
            },
        };
        (state, Some(self.latent_input.forward(z)))
    }

    /// Teacher-forced decoder logits.
    ///
    /// # Shapes
    /// - `inputs`: `[batch, T]`, `z`: `[batch, d]`
    /// - returns `[batch, T, vocab]`
    pub fn logits(&self, inputs: Tensor<2, Int>, z: Tensor<2>) -> Tensor<3> {
        self.decode(inputs, z, None)
    }

    /// [`TextVae::logits`] under the decoder's dropout masks, if any.
    fn decode(
        &self,
        inputs: Tensor<2, Int>,
        z: Tensor<2>,
        masks: Option<&DropoutMasks>,
    ) -> Tensor<3> {
        let (state, extra) = self.start(z);
        let emb = apply(self.embedding.forward(inputs), masks.map(|d| &d.decoder));
        let out = self.decoder.forward(emb, extra, state);
        let out = apply(out, masks.map(|d| &d.output));
        crate::fused::linear(&self.output, &out).unwrap_or_else(|| self.output.forward(out))
    }

    /// Decodes each row of `z` word by word from the begin token, as `how` says (see
    /// [`Decoding`]), drawing any sampling noise from `rng`. Returns word ids up to
    /// (without) the end token.
    pub fn generate<R: Rng + ?Sized>(
        &self,
        z: Tensor<2>,
        how: Decoding,
        rng: &mut R,
    ) -> Vec<Vec<u32>> {
        let Decoding {
            max_words,
            temperature,
            inputless,
        } = how;
        let [b, _] = z.dims();
        let device = z.device();
        let (mut state, extra) = self.start(z);
        let mut tokens = vec![BOS_ID; b];
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
        let mut done = vec![false; b];
        for _ in 0..=max_words {
            let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, 1]), &device);
            let emb = self
                .embedding
                .forward(ids)
                .reshape([b, self.embedding_dim()]);
            let p = self.decoder.project(emb.unsqueeze_dim(1), extra.clone());
            let width = self.decoder.cell().gates() * self.decoder.d_hidden();
            state = self.decoder.step(p.reshape([b, width]), state);
            let logits = self.output.forward(state.hidden.clone()); // [b, vocab]
            tokens = match temperature {
                None => read_ids(logits.argmax(1).reshape([b])),
                Some(t) => {
                    let probs = read_f32(softmax(logits.div_scalar(t.max(1e-6)), 1));
                    let v = probs.len() / b;
                    probs
                        .chunks(v)
                        .map(|p| sample_index(p, rng.random::<f32>()) as u32)
                        .collect()
                }
            };
            for r in 0..b {
                if done[r] {
                    continue;
                }
                if tokens[r] == EOS_ID || out[r].len() == max_words {
                    done[r] = true;
                } else {
                    out[r].push(tokens[r]);
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
            if inputless {
                // Trained on unknown tokens only: the next input is one too.
                tokens.fill(UNK_ID);
            }
        }
        out
    }

    fn embedding_dim(&self) -> usize {
        self.embedding.weight.dims()[1]
    }

    /// This model with the word embeddings, the recurrent decoder and the softmax
    /// layer of `source` (a trained language model, or another text model of the same
    /// vocabulary and sizes), and z's layers into the decoder (its initial state and
    /// its share of each step's input) at zero. With z's layers at zero the decoder's
    /// initial state is the zero state and z adds nothing to its inputs: the model
    /// starts as exactly `source`'s decoder, a language model, whatever z is, and z's
    /// influence grows from there (the pretrained decoder of Li et al. 2019 and of
    /// Optimus, without undoing what the language model learned at the first step).
    /// The encoder, its head and the kappa head stay as they are.
    ///
    /// Errors when the two differ in vocabulary size, embedding size, hidden size or
    /// cell, naming both.
    pub fn with_decoder_of(self, source: &TextVae) -> Result<Self, String> {
        let shape = |m: &TextVae| {
            (
                m.embedding.weight.dims(),
                m.decoder.cell(),
                m.decoder.d_hidden(),
                m.output.weight.dims(),
            )
        };
        let (ours, theirs) = (shape(&self), shape(source));
        if ours != theirs {
            return Err(format!(
                "its decoder does not fit this model: [vocabulary, embedding] {:?}, cell \
                 {:?}, hidden {} there, against {:?}, {:?}, {} here",
                theirs.0, theirs.1, theirs.2, ours.0, ours.1, ours.2
            ));
        }
        let device = self.init_state.weight.device();
        let zeros = |d_input, d_output, bias| {
            LinearConfig::new(d_input, d_output)
                .with_bias(bias)
                .with_initializer(Initializer::Zeros)
                .init(&device)
        };
        let [d, states] = self.init_state.weight.dims();
        let [_, width] = self.latent_input.weight.dims();
        Ok(Self {
            embedding: source.embedding.clone(),
            decoder: source.decoder.clone(),
            output: source.output.clone(),
            init_state: zeros(d, states, true),
            latent_input: zeros(d, width, false),
            ..self
        })
    }
}

/// How [`TextVae::generate`] decodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    /// Words at most per sentence (the end token is not counted).
    pub max_words: usize,
    /// `None`: greedy (argmax); `Some(t)`: sampling from the softmax of logits / t.
    pub temperature: Option<f64>,
    /// Feed the unknown token instead of the previous word at every step, as a model
    /// trained with `word_dropout = 1` (Inputless) always saw.
    pub inputless: bool,
}

impl Decoding {
    /// Greedy decoding of at most `max_words` words, feeding back each word.
    pub fn greedy(max_words: usize) -> Self {
        Self {
            max_words,
            temperature: None,
            inputless: false,
        }
    }
}

fn read_ids(t: Tensor<1, Int>) -> Vec<u32> {
    t.into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("ids read back")
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

fn read_f32(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("floats read back")
}

/// The index where the running sum of `p` passes `u` (the last one if rounding
/// leaves the sum short of `u`).
fn sample_index(p: &[f32], u: f32) -> usize {
    let mut acc = 0.0;
    for (i, &pi) in p.iter().enumerate() {
        acc += pi;
        if u < acc {
            return i;
        }
    }
    p.len() - 1
}

impl VaeModel for TextVae {
    type Batch = TextBatch;

    fn kind(&self) -> ModelKind {
        self.kind
    }

    fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    fn kappa_mode(&self) -> KappaMode {
        self.kappa.mode()
    }

    fn posterior(&self, x: &TextBatch) -> Posterior {
        match self.kind {
            // The language model has no encoder to run: its z is a point at 0.
            ModelKind::Lm => Posterior::Point {
                z: Tensor::zeros([x.rows(), self.latent_dim], &x.mask.device()),
            },
            kind => kind.posterior(self.head.forward(self.encode(x)), &self.kappa),
        }
    }

    /// Summed token cross-entropy over each sentence, end token included; padded
    /// positions contribute nothing. On flex, one fused op with its own backward
    /// ([`crate::fused::token_cross_entropy`]); elsewhere, log_softmax and a gather.
    fn neg_log_likelihood(&self, x: &TextBatch, z: Tensor<2>) -> Tensor<1> {
        let logits = self.decode(x.inputs.clone(), z, x.dropout.as_ref());
        if let Some(nll) = crate::fused::token_cross_entropy(&logits, &x.targets, &x.mask) {
            return nll;
        }
        let logp = log_softmax(logits, 2); // [b, T, vocab]
        let picked = logp
            .gather(2, x.targets.clone().unsqueeze_dim::<3>(2))
            .squeeze_dim::<2>(2); // [b, T]
        (picked * x.mask.clone())
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            .neg()
    }

    /// The word embeddings, the recurrent decoder and the softmax layer: the parts
    /// [`TextVae::with_decoder_of`] takes from a language model. The embeddings are
    /// the encoder's too (shared), so while they are held fixed the encoder reads the
    /// language model's word vectors.
    fn visit_pretrained_decoder<V: ModuleVisitor>(&self, visitor: &mut V) {
        self.embedding.visit(visitor);
        self.decoder.visit(visitor);
        self.output.visit(visitor);
    }
}
