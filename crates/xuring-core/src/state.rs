//! Typed per-task state without `unsafe`: a [`Slab`] of values named by generation-checked
//! [`Key`]s, a key carried in a task's [`Context`], and values the ring holds for its callbacks
//! ([`Ring::insert_state`], [`Ring::with_state`]).
//!
//! A callback is a plain `fn`, so the state of a connection cannot be captured: it lives in a
//! slab, and the connection's ops carry its key. The key travels in the context's `userdata`
//! as an integer with no provenance, never dereferenced, so it is safe to forge: a stale key
//! finds nothing (the slot's generation changes every time a value leaves it, and a slot whose
//! generations are used up is retired, never reused), and a made-up one finds nothing unless
//! it happens to name a live value.
//!
//! ```
//! use xuring_core::{Context, Key, Ring, RingError, RunCondition, Slab, Task};
//!
//! struct Conn {
//!     timers: u32,
//! }
//!
//! fn on_timer(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
//!     let key = task.key().expect("every timer here carries a key");
//!     ring.with_state(|_ring, conns: &mut Slab<Conn>| {
//!         // A connection closed meanwhile would find nothing here.
//!         if let Some(conn) = conns.get_mut(key) {
//!             conn.timers += 1;
//!         }
//!     })
//! }
//!
//! let mut ring = Ring::init(8)?;
//! let mut conns = Slab::new();
//! let key = conns.insert(Conn { timers: 0 });
//! ring.insert_state(conns);
//! ring.timer(xuring_core::Timespec { sec: 0, nsec: 1_000 }, Context::keyed(on_timer, key));
//! ring.run(RunCondition::UntilDone)?;
//! let conns: Slab<Conn> = ring.remove_state().expect("inserted above");
//! assert_eq!(conns.get(key).map(|c| c.timers), Some(1));
//! # Ok::<(), RingError>(())
//! ```

use core::any::{Any, TypeId};
use core::fmt;
use core::ptr::NonNull;

use crate::{Backend, Callback, Context, Ring, RingError, Task};

/// Half the bits of a `usize` hold a key's slot index, half its generation.
const HALF: u32 = usize::BITS / 2;
/// The generation bits of an encoded key.
const GENERATION_MASK: usize = (1 << HALF) - 1;
/// Slots a slab can have: an index must fit in the other half.
const MAX_SLOTS: usize = 1 << HALF;

/// The name of a value in a [`Slab`]: its slot and the slot's generation when it was inserted.
/// Copy it freely (into as many contexts as the value has ops in flight); once the value is
/// removed, every copy finds nothing. A key is not tied to its slab: used with another one, it
/// names whatever that slab holds in the same slot and generation, so keep one slab per kind
/// of key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    index: usize,
    /// Never 0, so an encoded key is never a null `userdata`.
    generation: usize,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}#{})", self.index, self.generation)
    }
}

impl Key {
    /// The key as a context's `userdata`: an address-only pointer, never dereferenced.
    pub fn to_userdata(self) -> NonNull<()> {
        let bits = (self.index << HALF) | self.generation;
        NonNull::new(core::ptr::without_provenance_mut(bits)).unwrap_or(NonNull::dangling())
    }

    /// The key a `userdata` made by [`to_userdata`](Self::to_userdata) holds. Any other value
    /// gives some key, which finds nothing in a slab unless it happens to name a live value
    /// (so do not mix keys and other `userdata` in one callback).
    pub fn from_userdata(userdata: NonNull<()>) -> Key {
        let bits = userdata.as_ptr().addr();
        Key {
            index: bits >> HALF,
            generation: bits & GENERATION_MASK,
        }
    }
}

/// One slot: a value and the generation its key carries, or the generation the next value
/// will get.
enum Slot<T> {
    Vacant { next: usize },
    Occupied { generation: usize, value: T },
}

/// Values of one type named by [`Key`]s: insert, look up, remove. Slots are reused; a key of a
/// removed value never finds the value that reuses its slot. Allocates only to grow, so a
/// server that keeps as many connections as it once had allocates nothing more.
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// Vacant slots, the most recently freed last.
    free: Vec<usize>,
    /// Vacant slots whose generations are used up: never reused, so that no key of theirs can
    /// ever find a new value (2^32 values in one slot on 64-bit targets).
    retired: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::new()
    }
}

impl<T> fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slab")
            .field("len", &self.len())
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl<T> Slab<T> {
    /// An empty slab.
    pub const fn new() -> Slab<T> {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            retired: 0,
        }
    }

    /// An empty slab with room for `n` values before it allocates.
    pub fn with_capacity(n: usize) -> Slab<T> {
        Slab {
            slots: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            retired: 0,
        }
    }

    /// How many values the slab holds.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len() - self.retired
    }

    /// Whether the slab holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `value` and returns its key.
    ///
    /// # Panics
    ///
    /// On a target with 32-bit pointers, past 65,536 slots (a key must fit in a `userdata`).
    pub fn insert(&mut self, value: T) -> Key {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index];
            let generation = match *slot {
                Slot::Vacant { next } => next,
                Slot::Occupied { .. } => unreachable!("a free slot is vacant"),
            };
            *slot = Slot::Occupied { generation, value };
            return Key { index, generation };
        }
        let index = self.slots.len();
        assert!(
            index < MAX_SLOTS,
            "a slab holds at most {MAX_SLOTS} values here"
        );
        self.slots.push(Slot::Occupied {
            generation: 1,
            value,
        });
        Key {
            index,
            generation: 1,
        }
    }

    /// The value `key` names, if it is still in the slab.
    pub fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index)? {
            Slot::Occupied { generation, value } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    /// The value `key` names, mutably, if it is still in the slab.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index)? {
            Slot::Occupied { generation, value } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    /// Whether `key` names a value in the slab.
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Takes the value `key` names out of the slab; every copy of `key` then finds nothing.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index)?;
        match slot {
            Slot::Occupied { generation, .. } if *generation == key.generation => {}
            _ => return None,
        }
        // Generations count up from 1 (a key is never a null `userdata`) within their half
        // of the bits; a slot that used them all is retired rather than reused with an old
        // generation, which a stale key could hold.
        let used_up = key.generation >= GENERATION_MASK;
        let next = key.generation + 1;
        let Slot::Occupied { value, .. } = core::mem::replace(slot, Slot::Vacant { next }) else {
            unreachable!("matched above")
        };
        if used_up {
            self.retired += 1;
        } else {
            self.free.push(key.index);
        }
        Some(value)
    }

    /// The values and their keys, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| match slot {
                Slot::Occupied { generation, value } => Some((
                    Key {
                        index,
                        generation: *generation,
                    },
                    value,
                )),
                Slot::Vacant { .. } => None,
            })
    }

    /// The keys of every value (to close every connection at shutdown, say).
    pub fn keys(&self) -> Vec<Key> {
        self.iter().map(|(key, _)| key).collect()
    }

    /// Keeps the values for which `keep` returns true and removes the others (their keys then
    /// find nothing), without allocating.
    pub fn retain(&mut self, mut keep: impl FnMut(Key, &mut T) -> bool) {
        for index in 0..self.slots.len() {
            let key = match &mut self.slots[index] {
                Slot::Occupied { generation, value } => {
                    let key = Key {
                        index,
                        generation: *generation,
                    };
                    if keep(key, value) {
                        continue;
                    }
                    key
                }
                Slot::Vacant { .. } => continue,
            };
            self.remove(key);
        }
    }
}

impl<B: Backend> Context<B> {
    /// A context whose task carries `key` (read it back with [`Task::key`]).
    pub fn keyed(cb: Callback<B>, key: Key) -> Context<B> {
        Context {
            cb,
            msg: 0,
            userdata: Some(key.to_userdata()),
        }
    }
}

impl<B: Backend> Task<B> {
    /// The key in the task's context (see [`Context::keyed`]), if it has a `userdata`.
    pub fn key(&self) -> Option<Key> {
        self.userdata().map(Key::from_userdata)
    }
}

/// A value the ring holds for its callbacks, by type. `None` while [`Ring::with_state`] has it
/// out.
pub(crate) struct StateSlot {
    type_id: TypeId,
    value: Option<Box<dyn Any>>,
}

impl<B: Backend> Ring<B> {
    /// Gives the ring a value of type `S` for its callbacks to reach with
    /// [`with_state`](Self::with_state); returns the one it held before, if any (or `None`
    /// while a `with_state` of that type has it out). The ring drops it with itself.
    pub fn insert_state<S: 'static>(&mut self, state: S) -> Option<S> {
        let old = self.put_state(TypeId::of::<S>(), Box::new(state));
        old.and_then(|old| old.downcast::<S>().ok()).map(|old| *old)
    }

    /// Stores a boxed state under its type, returning the one it replaces (no allocation: a
    /// `with_state` puts its value back through here).
    fn put_state(&mut self, type_id: TypeId, boxed: Box<dyn Any>) -> Option<Box<dyn Any>> {
        let states = &mut self.engine().states;
        match states.iter_mut().find(|s| s.type_id == type_id) {
            Some(slot) => slot.value.replace(boxed),
            None => {
                states.push(StateSlot {
                    type_id,
                    value: Some(boxed),
                });
                None
            }
        }
    }

    /// Takes the ring's value of type `S` back (`None` if it has none, or while a
    /// [`with_state`](Self::with_state) of that type has it out).
    pub fn remove_state<S: 'static>(&mut self) -> Option<S> {
        let states = &mut self.engine().states;
        let slot = states.iter_mut().find(|s| s.type_id == TypeId::of::<S>())?;
        let value = slot.value.take()?.downcast::<S>().ok()?;
        Some(*value)
    }

    /// Calls `f` with the ring and the value `key` names in the ring's `Slab<T>` (see
    /// [`insert_state`](Self::insert_state)): a callback's `&mut ConnState` for its task, with
    /// the ring to submit the next op. `Ok(None)` if the key finds nothing (the value was
    /// removed: a completion for a connection that is gone). To remove the value itself, use
    /// [`with_state`](Self::with_state), which lends the whole slab.
    ///
    /// Errors: [`RingError::NoState`] if the ring holds no `Slab<T>`.
    pub fn with_entry<T: 'static, R>(
        &mut self,
        key: Key,
        f: impl FnOnce(&mut Ring<B>, &mut T) -> R,
    ) -> Result<Option<R>, RingError> {
        self.with_state(|ring, slab: &mut Slab<T>| slab.get_mut(key).map(|value| f(ring, value)))
    }

    /// Calls `f` with the ring and its value of type `S` (see
    /// [`insert_state`](Self::insert_state)): `f` can submit ops while it holds the state.
    /// The value is out of the ring for the call (moved as a pointer, no allocation) and goes
    /// back when `f` returns or unwinds: inside `f`, a nested `with_state` or a
    /// [`remove_state`](Self::remove_state) of the same type finds nothing, and a value
    /// inserted with [`insert_state`](Self::insert_state) is dropped when this one goes back.
    /// If `f` assigns or swaps the ring, the value goes back into the ring the handle then
    /// holds, replacing (and dropping) any value of the same type that ring held.
    ///
    /// Errors: [`RingError::NoState`] if the ring holds no `S` (never inserted, removed, or
    /// already out in an enclosing `with_state`).
    pub fn with_state<S: 'static, R>(
        &mut self,
        f: impl FnOnce(&mut Ring<B>, &mut S) -> R,
    ) -> Result<R, RingError> {
        let Some(index) = self
            .engine()
            .states
            .iter()
            .position(|s| s.type_id == TypeId::of::<S>() && s.value.is_some())
        else {
            return Err(RingError::NoState(core::any::type_name::<S>()));
        };
        let value = self.engine().states[index].value.take();
        let Some(value) = value.and_then(|v| v.downcast::<S>().ok()) else {
            return Err(RingError::NoState(core::any::type_name::<S>()));
        };
        /// Puts the value back into whichever ring the handle holds then (if `f` replaced
        /// the ring, the new one), on return and on unwind.
        struct PutBack<'r, B: Backend, S: 'static> {
            ring: &'r mut Ring<B>,
            value: Option<Box<S>>,
        }
        impl<B: Backend, S: 'static> Drop for PutBack<'_, B, S> {
            fn drop(&mut self) {
                if let Some(value) = self.value.take() {
                    self.ring.put_state(TypeId::of::<S>(), value);
                }
            }
        }
        let mut guard = PutBack {
            ring: self,
            value: Some(value),
        };
        let PutBack { ring, value } = &mut guard;
        match value.as_deref_mut() {
            Some(state) => Ok(f(ring, state)),
            None => Err(RingError::NoState(core::any::type_name::<S>())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_values_key_finds_nothing_not_even_the_value_reusing_its_slot() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(
            (slab.get(a), slab.get(b), slab.len()),
            (Some(&"a"), Some(&"b"), 2)
        );
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "removed once");
        let c = slab.insert("c");
        assert_eq!(c.index, a.index, "the slot is reused");
        assert_eq!(slab.get(a), None, "the old key finds nothing");
        assert_eq!(slab.get_mut(a), None);
        assert!(!slab.contains(a));
        assert_eq!(slab.get(c), Some(&"c"));
        assert_eq!(slab.keys(), vec![c, b]);
        assert_eq!(slab.len(), 2);
        slab.retain(|key, v| key == c && *v == "c");
        assert_eq!(
            (slab.len(), slab.get(b), slab.get(c)),
            (1, None, Some(&"c"))
        );
    }

    #[test]
    fn a_key_survives_the_trip_through_a_userdata() {
        let mut slab = Slab::new();
        for i in 0..5 {
            let key = slab.insert(i);
            if i % 2 == 0 {
                slab.remove(key);
            }
        }
        let key = slab.insert(99);
        let back = Key::from_userdata(key.to_userdata());
        assert_eq!(back, key);
        assert_eq!(slab.get(back), Some(&99));
        // A forged userdata names some key, which finds nothing here.
        let forged = Key::from_userdata(NonNull::dangling());
        assert_eq!(slab.get(forged), None);
    }

    #[test]
    fn a_slot_whose_generations_are_used_up_is_retired_not_reused() {
        let mut slab = Slab::new();
        let key = slab.insert(());
        // Pretend the slot has been reused until its generation is the last one.
        slab.slots[key.index] = Slot::Occupied {
            generation: GENERATION_MASK,
            value: (),
        };
        let old = Key {
            index: key.index,
            generation: GENERATION_MASK,
        };
        assert_eq!(slab.remove(old), Some(()));
        assert_eq!(slab.len(), 0);
        let next = slab.insert(());
        assert_ne!(next.index, old.index, "a new slot");
        assert_eq!(next.generation, 1);
        assert_eq!(slab.get(old), None);
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.keys(), vec![next]);
    }
}
