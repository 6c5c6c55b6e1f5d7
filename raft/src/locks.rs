//! Locking the plain values shared between tasks (clock samples, lease tables).

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex whose data stays consistent even if a holder panicked: the values behind these
/// mutexes are plain numbers and maps updated in one step, so a panic elsewhere leaves nothing
/// half-written, and refusing to read them would only turn one failure into many.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
