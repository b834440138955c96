//! Sentences of a trained text model, the text twins of [`crate::modality::image::pictures`]: prior
//! draws decoded greedily and by sampling at a temperature, test sentences over their
//! greedy decodings from the posterior's location, and the sentences decoded along the
//! path between two test sentences' locations (great circle for vMF).

use std::fmt::Write as _;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use vmf_model::{TextVae, VaeModel};

use crate::error::TrainError;
use crate::modality::text::Sentences;
use crate::modality::view::{self, View};
use crate::output;
use crate::seeds;

/// A text model with the data it was trained on, ready to write sentences.
pub struct SentenceViews<'a> {
    kind: &'a Sentences,
    model: &'a TextVae,
    device: &'a Device,
}

impl<'a> SentenceViews<'a> {
    /// `model` (trained on `kind`'s data) on `device`.
    pub fn new(kind: &'a Sentences, model: &'a TextVae, device: &'a Device) -> Self {
        Self {
            kind,
            model,
            device,
        }
    }

    /// The text of `view`.
    pub fn render(&self, view: View) -> Result<String, TrainError> {
        match view {
            View::Sample {
                side,
                seed,
                temperature,
            } => self.sample(side, seed, temperature),
            View::Reconstruct { n } => self.reconstruct(n),
            View::Interpolate { pairs, steps } => self.interpolate(pairs, steps),
            View::Latent { .. } => Err(TrainError::Usage(
                "`latent` colours images by their label, and sentences have none; `eval` \
                 reports a text model's mutual information and active units"
                    .into(),
            )),
        }
    }

    fn words(&self, ids: &[u32]) -> String {
        self.kind.splits().vocab.decode(ids)
    }

    /// Decodings of the rows of `z` (host vectors of length d): greedy, or sampled at
    /// `temperature`.
    fn decode(&self, z: &[Vec<f64>], temperature: Option<f64>, rng: &mut StdRng) -> Vec<String> {
        let d = self.model.latent_dim();
        let flat: Vec<f32> = z.iter().flatten().map(|&v| v as f32).collect();
        let z = Tensor::<2>::from_data(TensorData::new(flat, [z.len(), d]), self.device);
        self.model
            .generate(z, self.kind.decoding(temperature), rng)
            .iter()
            .map(|s| self.words(s))
            .collect()
    }

    /// The posterior locations of the first `n` test sentences.
    fn locations(&self, n: usize) -> Result<Vec<Vec<f64>>, TrainError> {
        let test = &self.kind.splits().test;
        let ids: Vec<usize> = (0..n.min(test.len())).collect();
        let batch = self.kind.batch(test, &ids, self.device);
        Ok(output::rows(self.model.posterior(&batch).location())?
            .into_iter()
            .map(|r| r.into_iter().map(f64::from).collect())
            .collect())
    }

    /// `n` prior draws, each decoded greedily (`=` lines) and by sampling from the
    /// softmax at `temperature` (`~` lines).
    pub fn sample(&self, n: usize, seed: u64, temperature: f64) -> Result<String, TrainError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(TrainError::Usage(format!(
                "temperature = {temperature}: must be a positive number (1 samples from the \
                 model's own distribution; lower is closer to greedy)"
            )));
        }
        let mut rng = StdRng::seed_from_u64(seeds::derive(seed, "text-samples", 0));
        let d = self.model.latent_dim();
        let kind = self.model.kind();
        let z: Vec<Vec<f64>> = (0..n).map(|_| kind.prior_sample(&mut rng, d)).collect();
        let greedy = self.decode(&z, None, &mut rng);
        let sampled = self.decode(&z, Some(temperature), &mut rng);
        let mut out = format!(
            "# {n} prior draws, each decoded greedily (=) and sampled at temperature \
             {temperature} (~)\n"
        );
        for (g, s) in greedy.iter().zip(&sampled) {
            let _ = writeln!(out, "= {g}\n~ {s}");
        }
        Ok(out)
    }

    /// The first `n` test sentences (`>` lines) over their greedy decodings from the
    /// posterior's location (`<` lines).
    pub fn reconstruct(&self, n: usize) -> Result<String, TrainError> {
        let mus = self.locations(n)?;
        let decoded = self.decode(&mus, None, &mut StdRng::seed_from_u64(0));
        let test = &self.kind.splits().test;
        let mut out = format!(
            "# {} test sentences (>) and their greedy decodings from the posterior's \
             location (<)\n",
            mus.len()
        );
        for (i, r) in decoded.iter().enumerate() {
            let _ = writeln!(out, "> {}\n< {r}", self.words(&test.sentences[i]));
        }
        Ok(out)
    }

    /// For `pairs` pairs of consecutive test sentences: the first (`>`), the greedy
    /// decodings of `steps` points on the path between their locations (each after its
    /// fraction of the way), and the second (`>`).
    pub fn interpolate(&self, pairs: usize, steps: usize) -> Result<String, TrainError> {
        let steps = steps.max(2);
        let mus = self.locations(2 * pairs)?;
        let test = &self.kind.splits().test;
        let on_sphere = self.model.kind().on_sphere();
        let mut out = format!(
            "# paths between the locations of consecutive test sentences ({}), {steps} \
             points each, decoded greedily\n",
            if on_sphere {
                "great circles"
            } else {
                "straight lines"
            }
        );
        let mut rng = StdRng::seed_from_u64(0);
        for (p, ends) in mus.chunks(2).filter(|c| c.len() == 2).enumerate() {
            let path = view::path(on_sphere, &ends[0], &ends[1], steps);
            let decoded = self.decode(&path, None, &mut rng);
            let _ = writeln!(out, "> {}", self.words(&test.sentences[2 * p]));
            for (s, text) in decoded.iter().enumerate() {
                let _ = writeln!(out, "{:.2} {text}", s as f64 / (steps - 1) as f64);
            }
            let _ = writeln!(out, "> {}\n", self.words(&test.sentences[2 * p + 1]));
        }
        Ok(out)
    }
}
