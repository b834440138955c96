//! One recurrent layer, LSTM or GRU, with all gates in one matmul.
//!
//! Hand-rolled rather than Burn's `Lstm`/`Gru` for speed: Burn 0.22 runs a separate
//! input and hidden `Linear` per gate (8 small matmuls per LSTM time step) and writes
//! each step's output with a `slice_assign` into a `[batch, time, hidden]` tensor
//! (a copy of the whole tensor per step under autodiff). Here the input projection of
//! every time step is one matmul `[batch * time, input] x [input, gates * hidden]`,
//! each step adds one `[batch, hidden] x [hidden, gates * hidden]` matmul, and the
//! outputs are stacked once. On flex an LSTM layer goes further: the whole recurrence
//! is one op with its own backward through time (`fused::lstm`, with the `flex` feature), and a single
//! step (decoding) one fused cell; the step-by-step tensor ops below are the path of
//! every other backend and of the GRU. The equations are PyTorch's (gate order i, f, g,
//! o for the LSTM; r, z, n for the GRU), checked against a plain f64 implementation in
//! the tests.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Long short-term memory (the default).
    #[default]
    Lstm,
    /// Gated recurrent unit.
    Gru,
}

impl Cell {
    /// Gates per step (the width of the projections in units of the hidden size).
    pub fn gates(self) -> usize {
        match self {
            Self::Lstm => 4,
            Self::Gru => 3,
        }
    }
}

/// Builds an [`Rnn`].
#[derive(Debug, Clone, PartialEq)]
pub struct RnnConfig {
    /// The cell.
    pub cell: Cell,
    /// Input features per step.
    pub d_input: usize,
    /// Hidden size.
    pub d_hidden: usize,
}

impl RnnConfig {
    /// Builds the layer on `device`.
    pub fn init(&self, device: &Device) -> Rnn {
        let width = self.cell.gates() * self.d_hidden;
        Rnn {
            input: LinearConfig::new(self.d_input, width).init(device),
            // The LSTM's input bias covers every gate; the GRU needs the hidden bias
            // of its candidate gate inside r * (W h + b).
            hidden: LinearConfig::new(self.d_hidden, width)
                .with_bias(self.cell == Cell::Gru)
                .init(device),
            cell: self.cell,
            d_hidden: self.d_hidden,
        }
    }
}

/// The state between steps: hidden and, for the LSTM, cell state, each `[batch, hidden]`.
#[derive(Debug, Clone)]
pub struct RnnState {
    /// Hidden state h.
    pub hidden: Tensor<2>,
    /// LSTM cell state c (`None` for the GRU).
    pub cell: Option<Tensor<2>>,
}

/// See [`RnnConfig`].
#[derive(Module, Debug)]
pub struct Rnn {
    input: Linear,
    hidden: Linear,
    #[module(skip)]
    cell: Cell,
    #[module(skip)]
    d_hidden: usize,
}

impl Rnn {
    /// The hidden size.
    pub fn d_hidden(&self) -> usize {
        self.d_hidden
    }

    /// The cell.
    pub fn cell(&self) -> Cell {
        self.cell
    }

    /// The zero state for `batch` rows.
    pub fn zero_state(&self, batch: usize, device: &Device) -> RnnState {
        let zeros = Tensor::zeros([batch, self.d_hidden], device);
        RnnState {
            hidden: zeros.clone(),
            cell: (self.cell == Cell::Lstm).then_some(zeros),
        }
    }

    /// The input projection of every step, plus `extra` (a per-row term added at every
    /// step, e.g. the latent's share of the input).
    ///
    /// # Shapes
    /// - `x`: `[batch, time, d_input]`, `extra`: `[batch, gates * hidden]`
    /// - returns `[batch, time, gates * hidden]`
    pub fn project(&self, x: Tensor<3>, extra: Option<Tensor<2>>) -> Tensor<3> {
        let p = self.input.forward(x);
        match extra {
            Some(e) => p + e.unsqueeze_dim::<3>(1),
            None => p,
        }
    }

    /// One step from the projected input `p` (see [`Rnn::project`]).
    ///
    /// # Shapes
    /// - `p`: `[batch, gates * hidden]`
    pub fn step(&self, p: Tensor<2>, state: RnnState) -> RnnState {
        let hp = self.hidden.forward(state.hidden.clone());
        match self.cell {
            Cell::Lstm => {
                let gates = p + hp;
                let c_prev = state.cell.expect("an LSTM state has a cell");
                if let Some((hidden, cell)) = crate::fused::lstm_cell(&gates, &c_prev) {
                    return RnnState {
                        hidden,
                        cell: Some(cell),
                    };
                }
                let mut g = gates.chunk(4, 1).into_iter();
                let (i, f, c_new, o) = (
                    sigmoid(g.next().expect("4 gates")),
                    sigmoid(g.next().expect("4 gates")),
                    tanh(g.next().expect("4 gates")),
                    sigmoid(g.next().expect("4 gates")),
                );
                let c = f * c_prev + i * c_new;
                RnnState {
                    hidden: o * tanh(c.clone()),
                    cell: Some(c),
                }
            }
            Cell::Gru => {
                let mut x = p.chunk(3, 1).into_iter();
                let mut h = hp.chunk(3, 1).into_iter();
                let mut next = || (x.next().expect("3 gates"), h.next().expect("3 gates"));
                let (xr, hr) = next();
                let (xz, hz) = next();
                let (xn, hn) = next();
                let r = sigmoid(xr + hr);
                let z = sigmoid(xz + hz);
                let n = tanh(xn + r * hn);
                // h' = (1 - z) n + z h = n + z (h - n)
                RnnState {
                    hidden: n.clone() + z * (state.hidden - n),
                    cell: None,
                }
            }
        }
    }

    /// Runs over a sequence from `state`.
    ///
    /// # Shapes
    /// - `x`: `[batch, time, d_input]`, `extra`: `[batch, gates * hidden]`
    /// - returns the hidden states of every step `[batch, time, hidden]`
    ///
    /// On flex an LSTM layer runs as one fused op with its own backward through time
    /// (`fused::lstm`, with the `flex` feature); elsewhere, and for the GRU, step by step.
    pub fn forward(
        &self,
        x: Tensor<3>,
        extra: Option<Tensor<2>>,
        mut state: RnnState,
    ) -> Tensor<3> {
        let [batch, time, _] = x.dims();
        let p = self.project(x, extra);
        if let (Cell::Lstm, Some(c0)) = (self.cell, state.cell.as_ref())
            && let Some(out) =
                crate::fused::lstm_layer(&p, &self.hidden.weight.val(), &state.hidden, c0)
        {
            return out;
        }
        let width = self.cell.gates() * self.d_hidden;
        let mut outputs = Vec::with_capacity(time);
        for t in 0..time {
            let pt = p
                .clone()
                .slice([0..batch, t..t + 1])
                .reshape([batch, width]);
            state = self.step(pt, state);
            outputs.push(state.hidden.clone());
        }
        Tensor::stack(outputs, 1)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// x W + b for a row x, with W stored `[in, out]` as Burn's Linear does.
    fn affine(x: &[f64], w: &[f64], b: Option<&[f64]>, out: usize) -> Vec<f64> {
        (0..out)
            .map(|j| {
                let s: f64 = x
                    .iter()
                    .enumerate()
                    .map(|(i, xi)| xi * w[i * out + j])
                    .sum();
                s + b.map_or(0.0, |b| b[j])
            })
            .collect()
    }

    /// The textbook equations in f64, one row at a time, against the fused layer.
    fn check(cell: Cell) {
        let _rng = crate::rng_lock();
        let device = Device::flex();
        device.seed(5);
        let (batch, time, d_in, h) = (2, 4, 3, 5);
        let rnn = RnnConfig {
            cell,
            d_input: d_in,
            d_hidden: h,
        }
        .init(&device);
        let x: Vec<f32> = (0..batch * time * d_in)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let x_t = Tensor::<3>::from_data(TensorData::new(x.clone(), [batch, time, d_in]), &device);
        let out = values(rnn.forward(x_t, None, rnn.zero_state(batch, &device)));

        let g = cell.gates() * h;
        let wi = values(rnn.input.weight.val());
        let bi = values(rnn.input.bias.as_ref().unwrap().val());
        let wh = values(rnn.hidden.weight.val());
        let bh = rnn.hidden.bias.as_ref().map(|b| values(b.val()));
        for r in 0..batch {
            let (mut hs, mut cs) = (vec![0.0; h], vec![0.0; h]);
            for t in 0..time {
                let xt: Vec<f64> = (0..d_in)
                    .map(|i| f64::from(x[(r * time + t) * d_in + i]))
                    .collect();
                let p = affine(&xt, &wi, Some(&bi), g);
                let q = affine(&hs, &wh, bh.as_deref(), g);
                for j in 0..h {
                    match cell {
                        Cell::Lstm => {
                            let s = |k: usize| p[k * h + j] + q[k * h + j];
                            let (i, f, c, o) = (sig(s(0)), sig(s(1)), s(2).tanh(), sig(s(3)));
                            cs[j] = f * cs[j] + i * c;
                            hs[j] = o * cs[j].tanh(); // h of this step; q used the old h
                        }
                        Cell::Gru => {
                            let rg = sig(p[j] + q[j]);
                            let z = sig(p[h + j] + q[h + j]);
                            let n = (p[2 * h + j] + rg * q[2 * h + j]).tanh();
                            hs[j] = (1.0 - z) * n + z * hs[j];
                        }
                    }
                }
                for j in 0..h {
                    let got = out[(r * time + t) * h + j];
                    assert!(
                        (got - hs[j]).abs() < 1e-5,
                        "{cell:?} row {r} step {t} unit {j}: {got} vs {}",
                        hs[j]
                    );
                }
            }
        }
    }

    #[test]
    fn lstm_matches_the_equations_in_f64() {
        check(Cell::Lstm);
    }

    #[test]
    fn gru_matches_the_equations_in_f64() {
        check(Cell::Gru);
    }
}
