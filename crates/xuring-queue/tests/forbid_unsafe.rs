//! `impl_linked!` works in a crate that forbids `unsafe` code (like `xuring-core`): the
//! `unsafe impl` it expands to is the macro's responsibility, not the user's.
#![forbid(unsafe_code)]

use xuring_queue::{Link, List, Queue, impl_linked};

struct Task {
    id: u32,
    run: Link<Task>,
    all: Link<Task>,
}

struct All;

impl_linked!(Task, run);
impl_linked!(Task, all, All);

#[test]
fn macro_in_forbid_unsafe_crate() {
    let task = Task {
        id: 1,
        run: Link::new(),
        all: Link::new(),
    };
    let queue: Queue<Task> = Queue::new();
    let list: List<Task, All> = List::new();
    assert!(queue.is_empty() && queue.front().is_none());
    assert!(!list.contains(&task) && !task.run.is_linked() && !task.all.is_linked());
    assert_eq!(task.id, 1);
}
