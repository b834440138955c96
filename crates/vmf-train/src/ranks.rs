//! The processes of one training run: one, or the ranks of an MPI job.
//!
//! `mpirun -np N train --config X.toml` (a build with the cargo feature `mpi`) trains
//! one run on N processes, data-parallel as [`crate::step`] is within one: with
//! `training.shards = S`, each step's batch is cut into N x S shards exactly as one
//! process with `shards = N x S` cuts it ([`crate::step::ShardPlan`]), rank r computes
//! the gradients of its S shards (on its cores), every rank receives every shard's
//! gradients and adds them in shard order, and every rank takes the same Adam step.
//! Each rank draws the whole batch and its latent noise from the step's seeded stream,
//! as one process does, so N ranks train bit for bit as one process with N x S shards,
//! and a checkpoint of either resumes on the other.
//!
//! Why an all-gather and not MPI's all-reduce: `MPI_Allreduce` adds the ranks'
//! contributions in an order of the library's choosing (it depends on the message
//! size and the rank count), and float addition does not associate. Gathering every
//! shard's gradients and adding them in shard order makes the sum independent of how
//! many processes computed it. It moves N times the data of an all-reduce, which on
//! one machine is a small share of a step (docs/scale-out.md has the figures).
//!
//! Rank 0 alone writes the run folder (checkpoints, CSVs, pictures, samples) and
//! evaluates; the others take its validation figure (the early stop and the rate
//! decay depend on it). Ranks started with different configs, options, data or
//! binaries are refused at start ([`Ranks::check_same`]): they would deadlock or
//! silently train different models.

use std::fmt;
use std::ops::Range;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::TrainError;

/// The variables through which a launcher tells a process its place in a job:
/// Open MPI's `mpirun`, then the PMI of MPICH's `mpiexec` and of Slurm's `srun`.
const SIZE_VARS: [&str; 2] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// This process's place among the processes of one run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ranks {
    rank: usize,
    size: usize,
    /// The rank among the processes on this machine (which GPU it takes).
    local_rank: usize,
}

impl Default for Ranks {
    fn default() -> Self {
        Self::single()
    }
}

impl fmt::Debug for Ranks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rank {} of {}", self.rank, self.size)
    }
}

/// What keeps MPI up while a job runs: MPI is finalised when it is dropped, so the
/// `train` binary holds it until it exits (nothing without the `mpi` feature).
pub struct Session {
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

impl Ranks {
    /// One process: the whole run.
    pub fn single() -> Self {
        Self {
            rank: 0,
            size: 1,
            local_rank: 0,
        }
    }

    /// The processes of this job: the MPI world where a launcher (`mpirun`, `mpiexec`,
    /// `srun`) started this process among others, one process otherwise. A build
    /// without the `mpi` feature started among several processes is refused: each
    /// would train the whole run on its own, into the same folder.
    pub fn from_launcher() -> Result<(Self, Session), TrainError> {
        let launched = SIZE_VARS.iter().find_map(|v| {
            std::env::var(v)
                .ok()?
                .parse::<usize>()
                .ok()
                .map(|n| (*v, n))
        });
        match launched {
            None | Some((_, 0 | 1)) => Ok((Self::single(), Session::none())),
            Some((var, n)) => Self::mpi(var, n),
        }
    }

    #[cfg(not(feature = "mpi"))]
    fn mpi(var: &str, n: usize) -> Result<(Self, Session), TrainError> {
        Err(TrainError::Usage(format!(
            "started as one of {n} processes ({var} = {n}), but this build has no MPI: each \
             process would train the whole run on its own, into the same run folder. Rebuild \
             with `--features mpi` (docs/scale-out.md), or start one process"
        )))
    }

    #[cfg(feature = "mpi")]
    fn mpi(_var: &str, _n: usize) -> Result<(Self, Session), TrainError> {
        use mpi::Threading;
        use mpi::topology::Communicator;
        share_cores();
        // Only the loop's thread calls MPI; rayon's workers never do.
        let (universe, _) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| {
                TrainError::Usage("MPI could not be initialised (was it already?)".into())
            })?;
        let world = universe.world();
        let local_rank = [
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "MPI_LOCALRANKID",
            "SLURM_LOCALID",
        ]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0);
        let ranks = Self {
            rank: world.rank() as usize,
            size: world.size() as usize,
            local_rank,
        };
        Ok((
            ranks,
            Session {
                _universe: Some(universe),
            },
        ))
    }

    /// This process's rank, 0 to [`Ranks::size`] - 1.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// How many processes train the run.
    pub fn size(&self) -> usize {
        self.size
    }

    /// This process's rank among those on its machine.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Whether this is rank 0, the one that writes the run folder and evaluates.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Refuses to go on unless every rank has the same value of each `(what, value)`
    /// (the config, the options, the data, the binary): the error names what differs
    /// and on which ranks. Nothing to check on one process.
    pub fn check_same(&self, items: &[(&str, String)]) -> Result<(), TrainError> {
        if self.size == 1 {
            return Ok(());
        }
        let mine: Vec<u32> = items
            .iter()
            .flat_map(|(_, v)| v.bytes().chain([0]))
            .map(u32::from)
            .collect();
        let (all, parts) = self.all_gather(&mine);
        let all: Vec<&[u32]> = parts.into_iter().map(|p| &all[p]).collect();
        let decode = |words: &[u32]| -> Vec<String> {
            let bytes: Vec<u8> = words.iter().map(|&w| w as u8).collect();
            bytes
                .split(|&b| b == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        };
        let root = decode(all[0]);
        let mut differ = Vec::new();
        for (i, (what, _)) in items.iter().enumerate() {
            let others: Vec<String> = (1..self.size)
                .filter(|&r| decode(all[r]).get(i) != root.get(i))
                .map(|r| r.to_string())
                .collect();
            if !others.is_empty() {
                differ.push(format!(
                    "{what} (ranks {} differ from rank 0)",
                    others.join(", ")
                ));
            }
        }
        if differ.is_empty() {
            Ok(())
        } else {
            Err(TrainError::Usage(format!(
                "the {} processes of this job were not started alike: {}. Start every rank \
                 with the same binary, config, options and data files",
                self.size,
                differ.join("; ")
            )))
        }
    }

    /// Rank 0's `value` on every rank (the others' `value` is ignored).
    pub fn broadcast(&self, value: Vec<u32>) -> Vec<u32> {
        if self.size == 1 {
            return value;
        }
        self.broadcast_words(value)
    }

    /// Every shard's report and gradients, in shard order, on every rank: `local` holds
    /// this rank's shards (those of `plan`'s `mine`), computed on `model`. Gradients
    /// received from other ranks are placed on `grad_device` and their reports on
    /// `report_device`, as this rank's own are. The values arrive bit for bit.
    pub fn gather_shards<M: Module>(
        &self,
        model: &M,
        local: Vec<(Tensor<1>, GradientsParams)>,
        grad_device: &Device,
        report_device: &Device,
    ) -> Vec<(Tensor<1>, GradientsParams)> {
        if self.size == 1 {
            return local;
        }
        let mut mine = Vec::new();
        mine.push(local.len() as u32);
        for (report, grads) in &local {
            encode(model, report, grads, &mut mine);
        }
        let (all, parts) = self.all_gather(&mine);
        drop(mine);
        let mut out = Vec::new();
        let mut local = local.into_iter();
        for (rank, part) in parts.into_iter().enumerate() {
            let words = &all[part];
            let shards = words[0] as usize;
            if rank == self.rank {
                // This rank's own shards stay as computed.
                out.extend(local.by_ref());
                continue;
            }
            let mut at = 1;
            for _ in 0..shards {
                out.push(decode(model, words, &mut at, grad_device, report_device));
            }
            assert_eq!(
                at,
                words.len(),
                "rank {rank} sent what its shards account for"
            );
        }
        out
    }

    /// Ends every process of the job with `code` (`MPI_Abort`): a rank that fails
    /// while the others wait in a collective would leave them waiting. On one process,
    /// or without MPI, the process exits with `code`.
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if self.size > 1 {
            use mpi::topology::{Communicator, SimpleCommunicator};
            SimpleCommunicator::world().abort(code);
        }
        std::process::exit(code)
    }

    /// Every rank's `mine`, in rank order: one buffer and each rank's part of it.
    fn all_gather(&self, mine: &[u32]) -> (Vec<u32>, Vec<Range<usize>>) {
        #[cfg(feature = "mpi")]
        if self.size > 1 {
            return mpi_ops::all_gather(mine, self.size);
        }
        assert_eq!(self.size, 1, "several ranks need the mpi feature");
        let whole = 0..mine.len();
        (mine.to_vec(), vec![whole])
    }

    fn broadcast_words(&self, value: Vec<u32>) -> Vec<u32> {
        #[cfg(feature = "mpi")]
        if self.size > 1 {
            return mpi_ops::broadcast(value);
        }
        value
    }
}

impl Session {
    fn none() -> Self {
        Self {
            #[cfg(feature = "mpi")]
            _universe: None,
        }
    }
}

#[cfg(feature = "mpi")]
mod mpi_ops {
    use std::ops::Range;

    use mpi::Count;
    use mpi::datatype::PartitionMut;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;

    /// Every rank's `mine` (of any length), in rank order, in one buffer with each
    /// rank's part: their lengths first, then the words, in one `MPI_Allgatherv`.
    pub(super) fn all_gather(mine: &[u32], size: usize) -> (Vec<u32>, Vec<Range<usize>>) {
        let world = SimpleCommunicator::world();
        let count = Count::try_from(mine.len()).expect("a shard's gradients fit MPI's count");
        let mut counts = vec![0 as Count; size];
        world.all_gather_into(&count, &mut counts[..]);
        let displs: Vec<Count> = counts
            .iter()
            .scan(0 as Count, |at, &c| {
                let d = *at;
                *at = at
                    .checked_add(c)
                    .expect("a step's gradients fit MPI's count");
                Some(d)
            })
            .collect();
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut all = vec![0u32; total];
        {
            let mut parts = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            world.all_gather_varcount_into(mine, &mut parts);
        }
        let parts = counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| d as usize..(d + c) as usize)
            .collect();
        (all, parts)
    }

    /// Rank 0's `value` on every rank: its length, then its words.
    pub(super) fn broadcast(mut value: Vec<u32>) -> Vec<u32> {
        let world = SimpleCommunicator::world();
        let root = world.process_at_rank(0);
        let mut len = value.len() as u64;
        root.broadcast_into(&mut len);
        value.resize(len as usize, 0);
        root.broadcast_into(&mut value[..]);
        value
    }
}

/// Sizes rayon's pool so that the ranks on one machine share its cores instead of each
/// starting a thread per core (idle workers that spin cost the others' steps: 14% of
/// a 2-rank MNIST step on 2 cores): cores / ranks on this machine, at least 1, unless
/// `RAYON_NUM_THREADS` says otherwise. Call it before anything uses rayon.
#[cfg(feature = "mpi")]
fn share_cores() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
    if let Some(local) = local.filter(|&n| n > 1) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Fails only if the pool exists already, which then stays as it is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads((cores / local).max(1))
            .build_global();
    }
}

/// A digest of this process's binary: ranks started from different builds are refused
/// (their steps could differ in the last bits, or in more).
pub fn binary_digest() -> Result<String, TrainError> {
    use sha2::{Digest, Sha256};
    let exe = std::env::current_exe().map_err(TrainError::io("locating", "this binary"))?;
    let bytes = std::fs::read(&exe).map_err(TrainError::io("reading", &exe))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// Appends a shard's report and gradients to `out`: the report's length and entries,
/// then for each parameter of `model`, in visiting order, 1 and its gradient's values
/// (f32 bits), or 0 where it has no gradient.
fn encode<M: Module>(model: &M, report: &Tensor<1>, grads: &GradientsParams, out: &mut Vec<u32>) {
    struct Encode<'a> {
        grads: &'a GradientsParams,
        out: &'a mut Vec<u32>,
    }
    impl ModuleVisitor for Encode<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            match self.grads.get::<D>(param.id) {
                Some(g) => {
                    self.out.push(1);
                    let data = g.into_data().convert::<f32>();
                    let v = data.as_slice::<f32>().expect("converted to f32");
                    self.out.extend_from_slice(bytemuck::cast_slice(v));
                }
                None => self.out.push(0),
            }
        }
    }
    let report = values(report.clone());
    out.push(report.len() as u32);
    out.extend(report.into_iter().map(f32::to_bits));
    model.visit(&mut Encode { grads, out });
}

/// The shard that [`encode`] wrote at `words[*at..]`; advances `at` past it.
fn decode<M: Module>(
    model: &M,
    words: &[u32],
    at: &mut usize,
    grad_device: &Device,
    report_device: &Device,
) -> (Tensor<1>, GradientsParams) {
    struct Decode<'a> {
        words: &'a [u32],
        at: &'a mut usize,
        device: &'a Device,
        grads: GradientsParams,
    }
    impl Decode<'_> {
        fn take(&mut self, n: usize) -> Vec<f32> {
            let v = bytemuck::cast_slice(&self.words[*self.at..*self.at + n]).to_vec();
            *self.at += n;
            v
        }
    }
    impl ModuleVisitor for Decode<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let present = self.words[*self.at];
            *self.at += 1;
            if present == 1 {
                let dims: [usize; D] = param.val().dims();
                let v = self.take(dims.iter().product());
                let g = Tensor::<D>::from_data(TensorData::new(v, dims), self.device);
                self.grads.register(param.id, g);
            }
        }
    }
    let n = words[*at] as usize;
    *at += 1;
    let mut d = Decode {
        words,
        at,
        device: grad_device,
        grads: GradientsParams::new(),
    };
    let report = d.take(n);
    model.visit(&mut d);
    let report = Tensor::<1>::from_data(TensorData::new(report, [n]), report_device);
    (report, d.grads)
}

/// A tensor's values as f32 (its own bits where it is f32).
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32")
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};

    use super::*;

    /// A shard's report and gradients through the words that travel between ranks:
    /// every value back bit for bit (a NaN and a negative zero included), a parameter
    /// without a gradient still without one.
    #[test]
    fn a_shard_round_trips_through_its_words_bit_for_bit() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let model: Linear = LinearConfig::new(4, 3).init(&device);
        let x = Tensor::<2>::from_data(
            TensorData::new((0..8).map(|i| (i as f32).sin()).collect::<Vec<_>>(), [2, 4]),
            &device,
        );
        let grads =
            GradientsParams::from_grads(model.forward(x).powi_scalar(2).sum().backward(), &model);
        let bias = model.bias.as_ref().unwrap().id;
        let mut partial = GradientsParams::new();
        partial.register(model.weight.id, grads.get::<2>(model.weight.id).unwrap());
        let report = Tensor::<1>::from_data([1.5f32, f32::NAN, -0.0, 3e-39], &device);
        let inner = Device::flex();
        for g in [grads, partial] {
            let mut words = vec![7];
            encode(&model, &report, &g, &mut words);
            let mut at = 1;
            let (r, back) = decode(&model, &words, &mut at, &inner, &device);
            assert_eq!(at, words.len());
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            assert_eq!(bits(values(r)), bits(values(report.clone())));
            let w = |g: &GradientsParams| g.get::<2>(model.weight.id).map(values).map(bits);
            let b = |g: &GradientsParams| g.get::<1>(bias).map(values).map(bits);
            assert!(w(&g).is_some());
            assert_eq!(w(&back), w(&g));
            assert_eq!(b(&back), b(&g));
        }
    }
}
