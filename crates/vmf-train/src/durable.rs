//! Every write a run makes to its run folder, done so that a kill (kill -9, out of
//! memory, a lost machine) at any instant leaves a folder that `--resume auto`
//! continues: whole files are written beside their name and renamed into place after
//! an fsync, CSV rows are appended whole (a torn last row is dropped on resume, see
//! [`crate::output::resume_csv`]), and files written by other libraries (Burn's records)
//! are synced before the checkpoint folder holding them is renamed into place.
//!
//! Fault injection, for the tests that prove it: with `VMF_FAULT_AT_WRITE=k` in the
//! environment the process aborts (SIGABRT, no destructors, like kill -9) in the
//! middle of its k-th write: a file write leaves half of its bytes, an append half of
//! its row, a rename is not done, a folder's removal stops after its first file.
//! Without the variable a write pays one check of a cached value.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::TrainError;

/// The environment variable that arms the fault injection: the 1-based index of the
/// write to tear.
pub const FAULT_VAR: &str = "VMF_FAULT_AT_WRITE";

/// Whether this write is the one to tear (counts the write when armed).
fn strike() -> bool {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let Some(at) = *AT.get_or_init(|| std::env::var(FAULT_VAR).ok()?.parse().ok()) else {
        return false;
    };
    COUNT.fetch_add(1, Ordering::Relaxed) + 1 == at
}

fn die(what: &str, path: &Path) -> ! {
    eprintln!(
        "fault injection ({FAULT_VAR}): aborting mid-way through {what} {}",
        path.display()
    );
    std::process::abort()
}

/// `path` with `.tmp` appended: where a whole file is written before its rename.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Writes `bytes` to the new file `path` (replacing any) and syncs it; for files inside
/// a folder that is renamed into place afterwards (a checkpoint's `state.json`).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut f = File::create(path).map_err(TrainError::io("creating", path))?;
    if strike() {
        let _ = f.write_all(&bytes[..bytes.len() / 2]);
        die("writing", path);
    }
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(TrainError::io("writing", path))
}

/// Replaces the file `path` with `bytes` so that a kill leaves either the old file or
/// the new one: written beside it (`<path>.tmp`), synced, renamed over it.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = tmp_path(path);
    write_new(&tmp, bytes)?;
    rename(&tmp, path)
}

/// Appends `row` and a newline to the CSV at `path` in one write, with `header` first
/// if the file is new.
pub fn append_row(path: &Path, header: &str, row: &str) -> Result<(), TrainError> {
    let new = !path.exists();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(TrainError::io("opening", path))?;
    let text = if new {
        format!("{header}\n{row}\n")
    } else {
        format!("{row}\n")
    };
    if strike() {
        let _ = f.write_all(&text.as_bytes()[..text.len() / 2]);
        die("appending to", path);
    }
    f.write_all(text.as_bytes())
        .map_err(TrainError::io("writing", path))
}

/// Syncs a file that another library wrote (a Burn record), so that the folder renamed
/// into place after it holds the whole file even after a lost machine.
pub fn seal(path: &Path) -> Result<(), TrainError> {
    if strike() {
        // Torn as a kill during the library's write would leave it.
        if let Ok(len) = fs::metadata(path).map(|m| m.len())
            && let Ok(f) = OpenOptions::new().write(true).open(path)
        {
            let _ = f.set_len(len / 2);
        }
        die("writing", path);
    }
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(TrainError::io("syncing", path))
}

/// Renames `from` to `to` (atomic on one file system) and syncs the folder that holds
/// `to`, so that the new name survives a lost machine.
pub fn rename(from: &Path, to: &Path) -> Result<(), TrainError> {
    if strike() {
        die("renaming", from);
    }
    fs::rename(from, to).map_err(TrainError::io("renaming", from))?;
    if let Some(dir) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Best effort: some file systems cannot open a folder for syncing.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Removes the folder `path` and everything in it.
pub fn remove_dir_all(path: &Path) -> Result<(), TrainError> {
    if strike() {
        // Half done: a removal stopped part-way leaves some of the files.
        if let Some(first) = fs::read_dir(path).ok().and_then(|mut d| d.next()?.ok()) {
            let _ = fs::remove_file(first.path());
        }
        die("removing", path);
    }
    fs::remove_dir_all(path).map_err(TrainError::io("removing", path))
}

/// Removes the file `path` (absent is fine).
pub fn remove_file(path: &Path) -> Result<(), TrainError> {
    if !path.exists() {
        return Ok(());
    }
    if strike() {
        die("removing", path);
    }
    fs::remove_file(path).map_err(TrainError::io("removing", path))
}
