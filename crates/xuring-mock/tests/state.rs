//! Typed state a ring holds for its callbacks (`Ring::insert_state`, `Ring::with_state`) and
//! keys carried by tasks (`Context::keyed`): what safe code can do with them, including from
//! inside callbacks, panicking and replacing the ring. Runs under Miri.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use xuring_core::{Context, Key, Offset, OpResult, Ring, RingError, RunCondition, Slab, Task};
use xuring_mock::{Mock, MockRingExt};

type MockRing = Ring<Mock>;

const PIPE_FD: i32 = 4;

#[derive(Debug, Default)]
struct Conn {
    reads: u32,
    bytes: usize,
}

fn on_read(ring: &mut MockRing, task: &Task<Mock>) -> Result<(), RingError> {
    let Some(key) = task.key() else {
        return Err(RingError::Callback("a read without a key".into()));
    };
    let n = match task.result {
        Some(OpResult::Read(Ok(n))) => n,
        ref other => return Err(RingError::Callback(format!("{other:?}").into())),
    };
    ring.with_state(|ring, conns: &mut Slab<Conn>| {
        let Some(conn) = conns.get_mut(key) else {
            return; // closed meanwhile: a stale key finds nothing
        };
        conn.reads += 1;
        conn.bytes += n;
        if conn.reads < 3 {
            // The state and the ring at once: the next read of the same connection.
            ring.read(
                PIPE_FD,
                vec![0; 4],
                Offset::File,
                Context::keyed(on_read, key),
            );
        } else {
            conns.remove(key);
        }
    })
}

fn pipe_ring() -> MockRing {
    let mut ring = Ring::init_mock();
    ring.backend_mut().pipe(PIPE_FD);
    ring.backend_mut().feed(PIPE_FD, b"0123456789ab");
    ring
}

#[test]
fn callbacks_reach_their_tasks_state_by_key_and_submit_while_holding_it() {
    let mut ring = pipe_ring();
    let mut conns = Slab::new();
    let key = conns.insert(Conn::default());
    let other = conns.insert(Conn::default());
    assert!(ring.insert_state(conns).is_none());
    ring.read(
        PIPE_FD,
        vec![0; 4],
        Offset::File,
        Context::keyed(on_read, key),
    );
    ring.run(RunCondition::UntilDone).expect("run");
    let conns: Slab<Conn> = ring.remove_state().expect("still in the ring");
    assert!(!conns.contains(key), "removed after its third read");
    assert_eq!(conns.len(), 1);
    assert_eq!(conns.get(other).map(|c| c.reads), Some(0));
    assert!(ring.remove_state::<Slab<Conn>>().is_none(), "taken above");
}

#[test]
fn a_completion_for_a_removed_value_finds_nothing() {
    let mut ring = pipe_ring();
    let mut conns = Slab::new();
    let key = conns.insert(Conn::default());
    ring.read(
        PIPE_FD,
        vec![0; 4],
        Offset::File,
        Context::keyed(on_read, key),
    );
    conns.remove(key);
    // The slot is reused by a new connection before the old read completes.
    let new = conns.insert(Conn::default());
    ring.insert_state(conns);
    ring.run(RunCondition::UntilDone).expect("run");
    let conns: Slab<Conn> = ring.remove_state().expect("state");
    assert_eq!(
        conns.get(new).map(|c| c.reads),
        Some(0),
        "untouched by the old read"
    );
}

#[test]
fn with_state_without_the_state_is_an_error_naming_the_type() {
    let mut ring = Ring::init_mock();
    let missing = ring.with_state(|_, _: &mut Slab<Conn>| ());
    match missing {
        Err(RingError::NoState(ty)) => assert!(ty.contains("Slab"), "{ty}"),
        other => panic!("{other:?}"),
    }
    ring.insert_state(7u32);
    let nested = ring.with_state(|ring, n: &mut u32| {
        *n += 1;
        let inner = ring.with_state(|_, _: &mut u32| ());
        assert!(ring.remove_state::<u32>().is_none(), "out of the ring");
        inner
    });
    assert!(
        matches!(nested, Ok(Err(RingError::NoState(_)))),
        "{nested:?}"
    );
    assert_eq!(ring.remove_state::<u32>(), Some(8), "back after the call");
}

#[test]
fn the_state_goes_back_when_the_closure_panics() {
    let mut ring = Ring::init_mock();
    ring.insert_state(vec![1u8, 2, 3]);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        ring.with_state(|_, v: &mut Vec<u8>| {
            v.push(4);
            panic!("in the closure");
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(ring.remove_state::<Vec<u8>>(), Some(vec![1, 2, 3, 4]));
}

#[test]
fn a_value_inserted_inside_with_state_is_replaced_by_the_one_going_back() {
    let mut ring = Ring::init_mock();
    ring.insert_state(String::from("outer"));
    ring.with_state(|ring, s: &mut String| {
        s.push('!');
        assert_eq!(ring.insert_state(String::from("inner")), None);
    })
    .expect("state");
    assert_eq!(ring.remove_state::<String>().as_deref(), Some("outer!"));
}

thread_local!(static DROPS: Cell<u32> = const { Cell::new(0) });

struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
    }
}

#[test]
fn replacing_the_ring_inside_with_state_moves_the_state_to_the_new_ring() {
    DROPS.with(|d| d.set(0));
    let mut ring = Ring::init_mock();
    ring.insert_state(Counted);
    ring.with_state(|ring, _: &mut Counted| {
        *ring = Ring::init_mock();
    })
    .expect("state");
    assert_eq!(DROPS.with(Cell::get), 0, "not dropped with the old ring");
    assert!(ring.remove_state::<Counted>().is_some(), "in the new ring");
    assert_eq!(DROPS.with(Cell::get), 1);
    ring.insert_state(Counted);
    drop(ring);
    assert_eq!(DROPS.with(Cell::get), 2, "dropped with the ring");
}

#[test]
fn insert_state_returns_the_previous_value_of_that_type_only() {
    let mut ring = Ring::init_mock();
    assert_eq!(ring.insert_state(1u32), None);
    assert_eq!(ring.insert_state(1u64), None, "another type");
    assert_eq!(ring.insert_state(2u32), Some(1));
    assert_eq!(ring.remove_state::<u64>(), Some(1));
    assert_eq!(ring.remove_state::<u32>(), Some(2));
}

#[test]
fn a_key_is_not_tied_to_its_slab() {
    let mut a: Slab<u8> = Slab::new();
    let mut b: Slab<u8> = Slab::new();
    let ka = a.insert(1);
    b.insert(2);
    b.remove(Key::from_userdata(ka.to_userdata()));
    assert_eq!(
        b.len(),
        0,
        "same index and generation: keys are not branded by slab"
    );
    assert_eq!(a.get(ka), Some(&1));
}

#[test]
fn with_entry_lends_the_keyed_value_and_finds_nothing_for_a_removed_one() {
    let mut ring = Ring::init_mock();
    let mut conns = Slab::new();
    let live = conns.insert(Conn::default());
    let gone = conns.insert(Conn::default());
    conns.remove(gone);
    ring.insert_state(conns);
    let seen = ring.with_entry(live, |ring, conn: &mut Conn| {
        conn.reads += 1;
        ring.noop(Context::default());
        conn.reads
    });
    assert!(matches!(seen, Ok(Some(1))), "{seen:?}");
    assert!(matches!(
        ring.with_entry(gone, |_, _: &mut Conn| ()),
        Ok(None)
    ));
    assert!(matches!(
        ring.with_entry(live, |_, _: &mut u8| ()),
        Err(RingError::NoState(_))
    ));
    ring.run(RunCondition::UntilDone).expect("run");
    let conns: Slab<Conn> = ring.remove_state().expect("state");
    assert_eq!(conns.get(live).map(|c| c.reads), Some(1));
}
