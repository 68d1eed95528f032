//! The example programs' logic, run as tests: each example's functions are compiled into this
//! test crate (their `main` is not called), against `std` peers and real files, loopback only.

#[path = "../examples/cat.rs"]
#[allow(dead_code)]
mod cat;
#[path = "../examples/cp.rs"]
#[allow(dead_code)]
mod cp;
#[path = "../examples/echo_server.rs"]
#[allow(dead_code)]
mod echo_server;
#[path = "../examples/tcp_client.rs"]
#[allow(dead_code)]
mod tcp_client;
#[path = "../examples/timers.rs"]
#[allow(dead_code)]
mod timers;

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use xuring::io_uring::{Errno, Ring};
use xuring::stda::Error;

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("xuring-examples-{}-{name}", std::process::id()))
}

fn c_path(path: &std::path::Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL")
}

#[test]
fn echo_server_self_test_serves_and_checks_three_connections() {
    let messages = echo_server::demo_messages();
    let total: usize = messages.iter().map(Vec::len).sum();
    let stats = echo_server::self_test(messages).expect("self-test");
    assert_eq!(stats.connections, 3);
    assert_eq!(stats.bytes, total as u64);
    assert_eq!(
        stats.busiest, 300_000,
        "the largest message, on its own connection"
    );
    assert_eq!(xuring::stda::jobs_in_flight(), 0);
}

#[test]
fn echo_server_serves_more_open_connections_than_its_pool_has_buffers() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let clients = std::thread::spawn(move || {
        // All five are open at once, each holding a buffer while the server waits on it.
        let mut streams: Vec<TcpStream> = (0..5)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        for (i, s) in streams.iter_mut().enumerate() {
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let msg = format!("client {i}");
            s.write_all(msg.as_bytes()).expect("write");
            let mut got = vec![0u8; msg.len()];
            s.read_exact(&mut got).expect("read");
            assert_eq!(got, msg.as_bytes());
        }
    });
    let mut ring = Ring::builder(16)
        .buffer_pool(2, echo_server::BUF_SIZE)
        .build()
        .expect("ring");
    let stats = echo_server::serve(&mut ring, listener, Some(5)).expect("serve");
    clients.join().expect("clients");
    assert_eq!(stats.connections, 5);
    assert_eq!(stats.bytes, 5 * 8, "\"client i\" from each");
    assert_eq!(stats.busiest, 8);
    assert_eq!(
        ring.buffers().expect("pool").available(),
        2,
        "pool buffers returned"
    );
    assert_eq!(xuring::stda::jobs_in_flight(), 0);
}

#[test]
fn tcp_client_talks_to_an_echo_server_and_reports_a_refusal() {
    let (addr, server) = tcp_client::std_echo_once().expect("server");
    let reply = tcp_client::request(addr, b"multi-step").expect("ring");
    assert_eq!(reply, Ok(b"multi-step".to_vec()));
    server.join().expect("server");

    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    assert_eq!(
        tcp_client::request(closed, b"anyone?").expect("ring"),
        Err(Errno::ECONNREFUSED)
    );
}

#[test]
fn cat_writes_files_in_order_and_reports_the_missing_one() {
    let a = temp_path("cat-a");
    let b = temp_path("cat-b");
    let out = temp_path("cat-out");
    std::fs::write(&a, b"first file\n").expect("a");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&b, &big).expect("b");
    let sink = std::fs::File::create(&out).expect("out");
    let missing = temp_path("cat-missing");
    let report = cat::cat(
        vec![c_path(&a), c_path(&missing), c_path(&b)],
        sink.as_raw_fd(),
    )
    .expect("cat");
    drop(sink);
    let mut expected = b"first file\n".to_vec();
    expected.extend_from_slice(&big);
    assert!(std::fs::read(&out).expect("read out") == expected);
    assert_eq!(report.bytes, expected.len() as u64);
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].contains("cat-missing"),
        "{:?}",
        report.errors
    );
    for p in [a, b, out] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn cp_copies_and_reports_a_missing_source() {
    assert_eq!(cp::demo().expect("demo"), 1 << 20);
    let missing = temp_path("cp-missing");
    let to = temp_path("cp-to");
    assert_eq!(
        cp::cp(&missing, &to).expect("ring"),
        Err(Error::Os(Errno::ENOENT))
    );
}

#[test]
fn timers_fire_in_deadline_order_after_the_cancelled_one() {
    let fired = timers::run().expect("run");
    let names: Vec<&str> = fired.iter().map(|f| f.name).collect();
    // The cancelled timer and its cancel come first; the relative timers fire in their order.
    // Where the absolute one falls among them depends on how long the machine took between
    // reading the clock and submitting (a stall of 10 ms moves it): only its deadline is
    // checked.
    assert_eq!(names[..2], ["1h (cancelled)", "the cancel"]);
    let at = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name} fired: {names:?}"))
    };
    assert!(at("10ms") < at("30ms"), "{names:?}");
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(fired[0].result, Err(Errno::ECANCELED));
    assert!(fired[1..].iter().all(|f| f.result.is_ok()));
    for (name, deadline) in [("10ms", 10), ("absolute 20ms", 20), ("30ms", 30)] {
        assert!(
            fired[at(name)].after >= Duration::from_millis(deadline),
            "{name} fired early: {:?}",
            fired[at(name)].after
        );
    }
}
