//! Sentences, one per line: a validating reader (UTF-8, plain or gzip), the vocabulary
//! of the training split, and the sentences as word ids.
//!
//! A line is split on Unicode whitespace, so CRLF line ends and tabs are ordinary
//! separators; a UTF-8 byte-order mark at the start of a file is dropped; blank lines
//! are skipped. Ids 0-3 are the padding, begin, end and unknown tokens; the corpus's
//! own `<unk>` is the unknown token when it has one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Padding (id 0): positions after a sentence's end.
pub const PAD: &str = "<pad>";
/// Begin of sentence (id 1): the decoder's first input.
pub const BOS: &str = "<s>";
/// End of sentence (id 2): the decoder's last target.
pub const EOS: &str = "</s>";
/// Unknown word (id 3): words outside the vocabulary, and dropped decoder inputs.
pub const UNK: &str = "<unk>";
// The ids of the four tokens are the model's convention (its batches use them).
pub use vmf_model::text::{BOS_ID, EOS_ID, PAD_ID, UNK_ID};

/// What to do with a sentence longer than `data.max_length` words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongSentences {
    /// Keep its first `max_length` words.
    #[default]
    Truncate,
    /// Leave it out.
    Drop,
}

/// How sentences become word ids.
#[derive(Debug, Clone, PartialEq)]
pub struct TextOptions {
    /// Keep at most this many word types (the most frequent; ties by byte order).
    pub vocab_size: Option<usize>,
    /// Keep only word types seen at least this often in the training split.
    pub min_count: usize,
    /// Longest sentence in words (the end token not counted).
    pub max_length: usize,
    /// Truncate or drop longer sentences.
    pub long_sentences: LongSentences,
    /// Use only the first N training sentences.
    pub train_limit: Option<usize>,
    /// Use only the first N validation and test sentences.
    pub test_limit: Option<usize>,
}

/// The vocabulary: id -> token, the four special tokens first.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// The special tokens followed by `words` (which must not repeat them, except
    /// [`UNK`], which is skipped).
    pub fn new(words: impl IntoIterator<Item = String>) -> Self {
        let mut tokens: Vec<String> = [PAD, BOS, EOS, UNK].map(String::from).to_vec();
        tokens.extend(words.into_iter().filter(|w| w != UNK));
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self { tokens, index }
    }

    /// Number of tokens, the special ones included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: the special tokens are always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The id of `word` ([`UNK_ID`] when it is not in the vocabulary).
    pub fn id(&self, word: &str) -> u32 {
        self.index.get(word).copied().unwrap_or(UNK_ID)
    }

    /// The token of `id`.
    pub fn token(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map_or(UNK, String::as_str)
    }

    /// One token per line, in id order (the run folder's `vocab.txt`).
    pub fn to_text(&self) -> String {
        let mut s = self.tokens.join("\n");
        s.push('\n');
        s
    }

    /// Words decoded from ids, up to the first end token (padding and the begin
    /// token skipped).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .take_while(|&&i| i != EOS_ID)
            .filter(|&&i| i != PAD_ID && i != BOS_ID)
            .map(|&i| self.token(i))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One split: sentences as word ids (no begin or end token).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextSet {
    /// The sentences, each at least one word long.
    pub sentences: Vec<Vec<u32>>,
    /// The file they came from.
    pub file: PathBuf,
}

impl TextSet {
    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.sentences.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sentences.is_empty()
    }

    /// Tokens the model predicts: every word plus one end token per sentence.
    pub fn tokens(&self) -> usize {
        self.sentences.iter().map(|s| s.len() + 1).sum()
    }

    /// Share of words mapped to the unknown token.
    pub fn unknown_rate(&self) -> f64 {
        let words: usize = self.sentences.iter().map(Vec::len).sum();
        let unk = self.sentences.iter().flatten().filter(|&&i| i == UNK_ID);
        unk.count() as f64 / words.max(1) as f64
    }
}

/// The three splits with their vocabulary.
#[derive(Debug, Clone)]
pub struct TextSplits {
    /// The vocabulary (from the training split).
    pub vocab: Vocab,
    /// Training sentences.
    pub train: TextSet,
    /// Validation sentences.
    pub valid: TextSet,
    /// Test sentences.
    pub test: TextSet,
}

/// What loading did, for the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Sentences kept.
    pub kept: usize,
    /// Sentences truncated to `max_length`.
    pub truncated: usize,
    /// Sentences dropped for their length.
    pub dropped: usize,
    /// Blank lines skipped.
    pub blank: usize,
}

/// The file of split `stem` (`train`, `valid`, `test`) in `dir`: `<stem>.txt` or
/// `<stem>.txt.gz` (or the Penn Treebank's `ptb.<stem>.txt[.gz]`).
pub fn find_split(dir: &Path, stem: &str) -> Result<PathBuf, TrainError> {
    let names = [
        format!("{stem}.txt"),
        format!("{stem}.txt.gz"),
        format!("ptb.{stem}.txt"),
        format!("ptb.{stem}.txt.gz"),
    ];
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| TrainError::Data {
            file: dir.join(&names[0]),
            message: format!(
                "missing: the {stem} split must be {stem}.txt or {stem}.txt.gz in {} (one \
                 sentence per line, words separated by spaces)",
                dir.display()
            ),
        })
}

/// The text of a file, checked: gunzipped when it starts with the gzip magic, no NUL
/// bytes (a binary file), valid UTF-8, a leading byte-order mark dropped. Errors name
/// the file and the line.
pub fn read_text(path: &Path) -> Result<String, TrainError> {
    let err = |message: String| TrainError::Data {
        file: path.to_path_buf(),
        message,
    };
    let bytes = super::read_maybe_gzip(path, "")?;
    let line_of = |offset: usize| bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        return Err(err(format!(
            "line {}: a NUL byte; this looks like a binary file, not text with one sentence \
             per line",
            line_of(nul)
        )));
    }
    if let Err(e) = std::str::from_utf8(&bytes) {
        let at = e.valid_up_to();
        let line_start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        return Err(err(format!(
            "line {}, byte {}: not valid UTF-8; convert the file to UTF-8 (e.g. with iconv)",
            line_of(at),
            at - line_start + 1
        )));
    }
    let text = String::from_utf8(bytes).expect("checked above");
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The sentences of `text` as lists of words, with the length rule applied; at most
/// `limit` sentences. A line longer than `max_length` words is never split in full:
/// only its first `max_length + 1` words are looked at.
fn sentences<'a>(
    text: &'a str,
    opts: &TextOptions,
    limit: Option<usize>,
    report: &mut LoadReport,
) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let mut words: Vec<&str> = line.split_whitespace().take(opts.max_length + 1).collect();
        if words.is_empty() {
            report.blank += 1;
            continue;
        }
        if words.len() > opts.max_length {
            match opts.long_sentences {
                LongSentences::Truncate => {
                    words.truncate(opts.max_length);
                    report.truncated += 1;
                }
                LongSentences::Drop => {
                    report.dropped += 1;
                    continue;
                }
            }
        }
        out.push(words);
    }
    report.kept = out.len();
    out
}

/// [`sentences`], refusing a file that leaves none.
fn nonempty_sentences<'a>(
    text: &'a str,
    path: &Path,
    opts: &TextOptions,
    limit: Option<usize>,
    report: &mut LoadReport,
) -> Result<Vec<Vec<&'a str>>, TrainError> {
    let words = sentences(text, opts, limit, report);
    if !words.is_empty() {
        return Ok(words);
    }
    let why = if report.dropped > 0 {
        format!(
            "all {} sentences are longer than data.max_length = {} words and \
             data.long_sentences = \"drop\"",
            report.dropped, opts.max_length
        )
    } else {
        "no sentences: the file is empty or blank".to_string()
    };
    Err(TrainError::Data {
        file: path.to_path_buf(),
        message: why,
    })
}

/// The sentences of the file `path` (plain or gzip) in the words of an existing
/// `vocab` (a trained run's), with `opts`' length rule and at most `limit` of them: text
/// to apply a trained model to.
pub fn load_sentences(
    path: &Path,
    vocab: &Vocab,
    opts: &TextOptions,
    limit: Option<usize>,
) -> Result<(TextSet, LoadReport), TrainError> {
    let text = read_text(path)?;
    let mut report = LoadReport::default();
    let words = nonempty_sentences(&text, path, opts, limit, &mut report)?;
    let set = TextSet {
        sentences: to_ids(&words, vocab),
        file: path.to_path_buf(),
    };
    Ok((set, report))
}

/// The vocabulary of the training sentences: word types by falling count, ties in
/// byte order, at least `min_count` occurrences, at most `vocab_size` of them.
pub fn build_vocab(train: &[Vec<&str>], opts: &TextOptions) -> Vocab {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in train.iter().flatten() {
        *counts.entry(w).or_default() += 1;
    }
    for special in [PAD, BOS, EOS] {
        counts.remove(special); // reserved: such a word in the corpus reads as unknown
    }
    let mut types: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|&(w, c)| c >= opts.min_count || w == UNK)
        .collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    // The corpus's own <unk> is the unknown token, not a word that takes a place.
    types.retain(|&(w, _)| w != UNK);
    if let Some(n) = opts.vocab_size {
        types.truncate(n);
    }
    Vocab::new(types.into_iter().map(|(w, _)| w.to_string()))
}

fn to_ids(sentences: &[Vec<&str>], vocab: &Vocab) -> Vec<Vec<u32>> {
    sentences
        .iter()
        .map(|s| s.iter().map(|w| vocab.id(w)).collect())
        .collect()
}

/// Loads the three splits of `dir` and builds the vocabulary from the training one.
/// Returns the splits and one [`LoadReport`] per split (train, valid, test).
pub fn load_text(
    dir: &Path,
    opts: &TextOptions,
) -> Result<(TextSplits, [LoadReport; 3]), TrainError> {
    if !dir.is_dir() {
        return Err(TrainError::Data {
            file: dir.to_path_buf(),
            message: "folder not found: data.dir must hold train.txt, valid.txt and test.txt \
                      (or .txt.gz)"
                .into(),
        });
    }
    let paths = [
        find_split(dir, "train")?,
        find_split(dir, "valid")?,
        find_split(dir, "test")?,
    ];
    let texts = [
        read_text(&paths[0])?,
        read_text(&paths[1])?,
        read_text(&paths[2])?,
    ];
    let mut reports: [LoadReport; 3] = Default::default();
    let limits = [opts.train_limit, opts.test_limit, opts.test_limit];
    let mut split_words = Vec::new();
    for i in 0..3 {
        split_words.push(nonempty_sentences(
            &texts[i],
            &paths[i],
            opts,
            limits[i],
            &mut reports[i],
        )?);
    }
    let vocab = build_vocab(&split_words[0], opts);
    let set = |i: usize| TextSet {
        sentences: to_ids(&split_words[i], &vocab),
        file: paths[i].clone(),
    };
    let splits = TextSplits {
        train: set(0),
        valid: set(1),
        test: set(2),
        vocab,
    };
    Ok((splits, reports))
}
