//! The command line: `xuring-bench [COMMAND] [OPTIONS]`.
//!
//! No command (or `tour [SCENARIO]`): the probe, then the tour of paired, calibrated runs of
//! every scenario of [`SCENARIOS`] (or of one), ending in one table. `probe` prints only the
//! probe. The subcommands of [`crate::commands`] (`noop`, `randread`, `echo`, `echo-server`,
//! `msgring`, `timers`) run one case with the parameters given, on one side (`--impl`) or on
//! two in turn (xuring and the raw `io-uring` crate unless `--impl A,B` names others),
//! printing one record per run (`--json`: one JSON object per line).
//! A tour scenario that is not a subcommand (`read4k`, `alloc`) may be named without `tour`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use xuring_core::KernelLevel;

use crate::Config;
use crate::backend::backends;
use crate::commands::echo::{EchoBench, EchoOpts};
use crate::commands::echo_server::{self, EchoServerOpts};
use crate::commands::msgring::{MsgringBench, MsgringOpts};
use crate::commands::noop::{NoopBench, NoopOpts};
use crate::commands::randread::{RandreadBench, RandreadOpts};
use crate::commands::timers::{TimersBench, TimersOpts};
use crate::commands::{Bench, Impl, run_all};
use crate::error::BenchError;
use crate::pin::pin_to_one_cpu;
use crate::probe::ProbeReport;
use crate::report::summary_table;
use crate::scenarios::{SCENARIOS, find};

/// A subcommand and its options.
#[derive(Clone, Debug, PartialEq)]
pub enum Sub {
    /// `noop`.
    Noop(NoopOpts),
    /// `randread`.
    Randread(RandreadOpts),
    /// `echo`.
    Echo(EchoOpts),
    /// `echo-server`.
    EchoServer(EchoServerOpts),
    /// `msgring`.
    Msgring(MsgringOpts),
    /// `timers`.
    Timers(TimersOpts),
}

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Only the probe report.
    Probe,
    /// The probe and one tour scenario.
    One(&'static str),
    /// The probe and the whole tour.
    All,
    /// One subcommand.
    Sub(Sub),
    /// The usage text.
    Help,
}

/// The parsed arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// What to run.
    pub command: Command,
    /// `--rounds N` (tour).
    pub rounds: Option<u32>,
    /// `--quick` (tour).
    pub quick: bool,
    /// `--json` (probe and subcommands).
    pub json: bool,
    /// `--impl` (subcommands): one implementation, or two in turn; `None`: xuring and the
    /// raw `io-uring` crate in turn.
    pub imp: Option<Vec<Impl>>,
    /// `--runs N` (subcommands): runs per implementation.
    pub runs: Option<u32>,
}

/// The usage text.
pub fn usage() -> String {
    let mut text = String::from(
        "usage: xuring-bench [tour [SCENARIO] | probe | SUBCOMMAND] [OPTIONS]\n\n\
         With no command: probes the kernel's io_uring, then runs the benchmark tour of xuring\n\
         next to the raw io-uring crate (and tokio for echo) and prints one table. xuring runs\n\
         on io_uring, or on its readiness executor (epoll) where io_uring is blocked or\n\
         XURING_BACKEND=epoll; the table's first line says which. The process pins itself to\n\
         one CPU; variants run in turn for N rounds and the report gives medians and the\n\
         median of paired ratios.\n\n\
         tour options:\n  --rounds N  paired rounds per case (default 10; 3 with --quick)\n  \
         --quick     a few-second smoke run with small counts\n\ntour scenarios:\n",
    );
    for s in SCENARIOS {
        text.push_str(&format!("  {:<8}  {}\n", s.name, s.about));
    }
    text.push_str(
        "\nsubcommands (one case; xuring and io-uring in turn unless --impl is given):\n\
         \x20 probe                                    the probe alone\n\
         \x20 noop [--ops N] [--batch B]               NOPs through the task lifecycle, B in flight\n\
         \x20 randread [--file PATH] [--size-mib M] [--qd Q] [--secs S]\n\
         \x20                                          4 KiB random reads from a page-cached file\n\
         \x20 echo [--conns C] [--size S] [--secs T]   loopback TCP echo, server and client threads\n\
         \x20                                          (also --impl tokio)\n\
         \x20 echo-server [--port P] [--secs S] [--max-conns M]\n\
         \x20                                          a TCP echo server on 127.0.0.1 until SIGINT,\n\
         \x20                                          SIGTERM or S seconds (--impl: xuring default)\n\
         \x20 msgring [--round-trips N] [--level native|5.6]\n\
         \x20                                          ping-pong between two rings on two threads\n\
         \x20 timers [--count N] [--waves W] [--after-us U]\n\
         \x20                                          N concurrent timers armed and fired, W times\n\n\
         subcommand options:\n\
         \x20 --impl A[,B]   one side, or two run in turn: xuring (default executor), xuring-epoll,\n\
         \x20                xuring-io_uring, io-uring (the raw crate), tokio (echo only); e.g.\n\
         \x20                `echo --impl xuring-epoll,tokio`, `randread --impl xuring-epoll,xuring-io_uring`.\n\
         \x20                A side that cannot run here (io_uring blocked) is left out, with a note\n\
         \x20 --runs N       runs per side (default 5 with two sides, else 1)\n\
         \x20 --json         one JSON object per result line\n",
    );
    text
}

/// The options of a command line, in order, as `(name, value)`.
struct Options {
    list: Vec<(String, Option<String>)>,
}

impl Options {
    /// Takes `--name`'s value, if given.
    fn take(&mut self, name: &str) -> Option<Option<String>> {
        let at = self.list.iter().position(|(n, _)| n == name)?;
        Some(self.list.remove(at).1)
    }

    /// Takes `--name`'s value parsed as `T`, or `default`.
    fn parse<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.take(name) {
            None => Ok(default),
            Some(None) => Err(format!("--{name} needs a value")),
            Some(Some(v)) => v
                .parse()
                .map_err(|_| format!("--{name} takes a number, not {v:?}")),
        }
    }

    fn string(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(None) => Err(format!("--{name} needs a value")),
            Some(Some(v)) => Ok(Some(v)),
        }
    }

    fn flag(&mut self, name: &str) -> Result<bool, String> {
        match self.take(name) {
            None => Ok(false),
            Some(None) => Ok(true),
            Some(Some(v)) => Err(format!("--{name} takes no value (got {v:?})")),
        }
    }

    /// Fails on any option not taken.
    fn done(self, command: &str) -> Result<(), String> {
        match self.list.first() {
            None => Ok(()),
            Some((name, _)) => Err(format!("{command} has no option --{name}")),
        }
    }
}

/// The options that never take a value.
const FLAGS: &[&str] = &["json", "quick"];

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut words = Vec::new();
    let mut list = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            words.push("help".to_owned());
        } else if let Some(opt) = arg.strip_prefix("--") {
            match opt.split_once('=') {
                Some((name, value)) => list.push((name.to_owned(), Some(value.to_owned()))),
                None if FLAGS.contains(&opt) => list.push((opt.to_owned(), None)),
                None => list.push((opt.to_owned(), args.next())),
            }
        } else if arg.starts_with('-') && arg.len() > 1 {
            return Err(format!("unknown option {arg}"));
        } else {
            words.push(arg);
        }
    }
    let mut opts = Options { list };
    let json = opts.flag("json")?;
    let imp = opts
        .string("impl")?
        .map(|s| Impl::parse_list(&s))
        .transpose()?;
    let runs = match opts.take("runs") {
        None => None,
        Some(v) => Some(positive(v.as_deref(), "runs")?),
    };
    let quick = opts.flag("quick")?;
    let rounds = match opts.take("rounds") {
        None => None,
        Some(v) => Some(positive(v.as_deref(), "rounds")?),
    };
    let mut words = words.into_iter();
    let first = words.next();
    let command = match first.as_deref() {
        None | Some("all") => Command::All,
        Some("help") => Command::Help,
        Some("probe") => Command::Probe,
        Some("tour") => match words.next() {
            None => Command::All,
            Some(name) => match find(&name) {
                Some(s) => Command::One(s.name),
                None => return Err(format!("no tour scenario called {name}")),
            },
        },
        Some(name) => match subcommand(name, &mut opts)? {
            Some(sub) => Command::Sub(sub),
            None => match find(name) {
                Some(s) => Command::One(s.name),
                None => return Err(format!("no command called {name}")),
            },
        },
    };
    if let Some(extra) = words.next() {
        return Err(format!("one command at a time (got another: {extra})"));
    }
    let what = first.unwrap_or_else(|| "the tour".to_owned());
    opts.done(&what)?;
    if !matches!(command, Command::Sub(_)) && (imp.is_some() || runs.is_some()) {
        return Err("--impl and --runs are for subcommands".to_owned());
    }
    if matches!(command, Command::Sub(_)) && (quick || rounds.is_some()) {
        return Err("--quick and --rounds are for the tour".to_owned());
    }
    if json && !matches!(command, Command::Sub(_) | Command::Probe) {
        return Err("--json is for probe and subcommands".to_owned());
    }
    Ok(Args {
        command,
        rounds,
        quick,
        json,
        imp,
        runs,
    })
}

/// The subcommand called `name` with its options, or `None` if `name` is not one.
fn subcommand(name: &str, o: &mut Options) -> Result<Option<Sub>, String> {
    let sub = match name {
        "noop" => {
            let d = NoopOpts::default();
            Sub::Noop(NoopOpts {
                ops: o.parse("ops", d.ops)?,
                batch: o.parse("batch", d.batch)?,
            })
        }
        "randread" => {
            let d = RandreadOpts::default();
            Sub::Randread(RandreadOpts {
                file: o.string("file")?.map(PathBuf::from),
                size_mib: o.parse("size-mib", d.size_mib)?,
                qd: o.parse("qd", d.qd)?,
                secs: o.parse("secs", d.secs)?,
            })
        }
        "echo" => {
            let d = EchoOpts::default();
            Sub::Echo(EchoOpts {
                conns: o.parse("conns", d.conns)?,
                size: o.parse("size", d.size)?,
                secs: o.parse("secs", d.secs)?,
            })
        }
        "echo-server" => {
            let d = EchoServerOpts::default();
            Sub::EchoServer(EchoServerOpts {
                port: o.parse("port", d.port)?,
                secs: match o.string("secs")? {
                    None => None,
                    Some(v) => Some(
                        v.parse()
                            .map_err(|_| format!("--secs takes a number, not {v:?}"))?,
                    ),
                },
                max_conns: o.parse("max-conns", d.max_conns)?,
            })
        }
        "msgring" => {
            let d = MsgringOpts::default();
            let level = match o.string("level")?.as_deref() {
                None | Some("native") => KernelLevel::Native,
                Some("5.6") => KernelLevel::V5_6,
                Some(other) => return Err(format!("--level takes native or 5.6, not {other:?}")),
            };
            Sub::Msgring(MsgringOpts {
                round_trips: o.parse("round-trips", d.round_trips)?,
                level,
            })
        }
        "timers" => {
            let d = TimersOpts::default();
            Sub::Timers(TimersOpts {
                count: o.parse("count", d.count)?,
                waves: o.parse("waves", d.waves)?,
                after_us: o.parse("after-us", d.after_us)?,
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(sub))
}

fn positive(value: Option<&str>, name: &str) -> Result<u32, String> {
    match value.map(str::parse::<u32>) {
        Some(Ok(n)) if n > 0 => Ok(n),
        _ => Err(format!("--{name} takes a positive number, not {value:?}")),
    }
}

impl Args {
    /// The configuration these arguments select.
    pub fn config(&self) -> Config {
        let mut config = if self.quick {
            Config::quick()
        } else {
            Config::full()
        };
        if let Some(rounds) = self.rounds {
            config.rounds = rounds;
        }
        config
    }
}

/// Runs a subcommand, printing its records. Call it before any other thread exists:
/// `echo-server` blocks its stop signals for every thread started after it.
fn run_sub(sub: &Sub, args: &Args) -> Result<(), BenchError> {
    // The main thread on one CPU; the second thread of `echo` and `msgring` on the other.
    let _ = pin_to_one_cpu();
    let one_side = args.imp.as_ref().is_some_and(|list| list.len() == 1);
    let runs = args.runs.unwrap_or(if one_side { 1 } else { 5 });
    if !args.json && !matches!(sub, Sub::EchoServer(_)) {
        println!("{}", backends().headline());
    }
    let mut bench: Box<dyn Bench> = match sub {
        Sub::Noop(o) => Box::new(NoopBench::new(*o)?),
        Sub::Randread(o) => Box::new(RandreadBench::new(o.clone())?),
        Sub::Echo(o) => Box::new(EchoBench::new(*o)?),
        Sub::Msgring(o) => Box::new(MsgringBench::new(*o)?),
        Sub::Timers(o) => Box::new(TimersBench::new(*o)?),
        Sub::EchoServer(o) => {
            let imp = match args.imp.as_deref() {
                None => Impl::Xuring,
                Some([imp]) => *imp,
                Some(_) => {
                    return Err(BenchError::Other(
                        "echo-server serves with one --impl at a time".to_owned(),
                    ));
                }
            };
            let served = echo_server::serve(imp, *o)?;
            if args.json {
                println!("{}", served.json());
            } else {
                println!("{}", served.text());
            }
            return Ok(());
        }
    };
    run_all(bench.as_mut(), args.imp.as_deref(), runs, args.json)
}

/// Runs the command line as the binary does; returns the process's exit code.
pub fn run(args: impl IntoIterator<Item = String>) -> ExitCode {
    let args = match parse(args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("xuring-bench: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    if args.command == Command::Help {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    if let Command::Sub(sub) = &args.command {
        return match run_sub(sub, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xuring-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let start = Instant::now();
    let pinning = pin_to_one_cpu();
    let probe = ProbeReport::collect(Some(pinning));
    if args.json {
        println!("{}", probe.json());
    } else {
        print!("{probe}");
    }
    if !probe.available() {
        println!("\nxuring could not make a ring here (see above), so no scenario can run.");
        return ExitCode::FAILURE;
    }
    let selected: Vec<_> = match args.command {
        Command::All => SCENARIOS.iter().collect(),
        Command::One(name) => SCENARIOS.iter().filter(|s| s.name == name).collect(),
        Command::Probe | Command::Help | Command::Sub(_) => Vec::new(),
    };
    if selected.is_empty() {
        return ExitCode::SUCCESS;
    }
    let config = args.config();
    println!(
        "\nmode {}: {} rounds per case; ratios are A's throughput over B's (above 1: A faster)",
        config.mode, config.rounds
    );
    let mut failed = false;
    let mut summary = Vec::new();
    let mut rows = Vec::new();
    let count = selected.len();
    for (i, scenario) in selected.into_iter().enumerate() {
        eprintln!(
            "[{}/{count}] {} ({:.0} s so far)",
            i + 1,
            scenario.name,
            start.elapsed().as_secs_f64()
        );
        println!();
        let _ = std::io::stdout().flush();
        match (scenario.entry)(&config) {
            Ok(output) => {
                print!("{}", output.text);
                summary.extend(output.summary);
                rows.extend(output.rows);
            }
            Err(e) => {
                println!("== {}: FAILED: {e}", scenario.name);
                summary.push(format!("{}: FAILED: {e}", scenario.name));
                failed = true;
            }
        }
    }
    println!("\n== summary ({:.1} s)", start.elapsed().as_secs_f64());
    let found = backends();
    let notes: Vec<String> = found.raw_note().into_iter().collect();
    print!("{}", summary_table(&found.headline(), &rows, &notes));
    for line in summary {
        println!("  {line}");
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn the_default_is_the_tour() {
        let a = args(&[]).expect("parse");
        assert_eq!(a.command, Command::All);
        assert!(!a.quick && !a.json);
        assert_eq!(a.config().rounds, Config::full().rounds);
    }

    #[test]
    fn tour_scenarios_rounds_and_quick() {
        let a = args(&["tour", "noop", "--rounds", "7", "--quick"]).expect("parse");
        assert_eq!(a.command, Command::One("noop"));
        assert_eq!(a.config().rounds, 7);
        assert_eq!(a.config().mode, "quick");
        assert_eq!(
            args(&["--rounds=3", "probe"]).expect("parse").rounds,
            Some(3)
        );
        assert_eq!(
            args(&["read4k"]).expect("parse").command,
            Command::One("read4k")
        );
        assert!(args(&["probe", "--json"]).expect("parse").json);
    }

    #[test]
    fn subcommands_take_their_options() {
        let a = args(&[
            "noop",
            "--ops",
            "1000",
            "--batch=8",
            "--impl",
            "io-uring",
            "--json",
        ])
        .expect("parse");
        assert_eq!(
            a.command,
            Command::Sub(Sub::Noop(NoopOpts {
                ops: 1000,
                batch: 8
            }))
        );
        assert_eq!(a.imp, Some(vec![Impl::IoUring]));
        assert!(a.json);
        let a = args(&["echo", "--impl", "xuring-epoll,tokio"]).expect("parse");
        assert_eq!(
            a.imp,
            Some(vec![
                Impl::XuringOn(xuring_core::Executor::Epoll),
                Impl::Tokio
            ])
        );
        let a = args(&[
            "randread", "--file", "/tmp/x", "--qd", "128", "--secs", "0.5",
        ])
        .expect("parse");
        let Command::Sub(Sub::Randread(o)) = a.command else {
            panic!("not randread: {:?}", a.command);
        };
        assert_eq!(o.file, Some(PathBuf::from("/tmp/x")));
        assert_eq!(
            (o.qd, o.secs, o.size_mib),
            (128, 0.5, RandreadOpts::default().size_mib)
        );
        let a = args(&["echo-server", "--port", "9000"]).expect("parse");
        assert_eq!(
            a.command,
            Command::Sub(Sub::EchoServer(EchoServerOpts {
                port: 9000,
                ..EchoServerOpts::default()
            }))
        );
        let a = args(&[
            "msgring",
            "--round-trips",
            "10",
            "--level",
            "5.6",
            "--runs",
            "2",
        ])
        .expect("parse");
        assert_eq!(a.runs, Some(2));
        assert_eq!(
            a.command,
            Command::Sub(Sub::Msgring(MsgringOpts {
                round_trips: 10,
                level: KernelLevel::V5_6
            }))
        );
        let a = args(&["timers", "--count", "64", "--after-us", "5"]).expect("parse");
        assert_eq!(
            a.command,
            Command::Sub(Sub::Timers(TimersOpts {
                count: 64,
                after_us: 5,
                ..TimersOpts::default()
            }))
        );
        let a = args(&["echo", "--conns", "128", "--size", "4096", "--secs", "1"]).expect("parse");
        assert_eq!(
            a.command,
            Command::Sub(Sub::Echo(EchoOpts {
                conns: 128,
                size: 4096,
                secs: 1.0
            }))
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(args(&["nosuch"]).is_err());
        assert!(args(&["--rounds"]).is_err());
        assert!(args(&["--rounds", "0"]).is_err());
        assert!(args(&["--fast"]).is_err());
        assert!(args(&["probe", "read4k"]).is_err());
        assert!(
            args(&["noop", "--qd", "4"]).is_err(),
            "an option of another command"
        );
        assert!(args(&["noop", "--ops", "many"]).is_err());
        assert!(args(&["noop", "--impl", "monoio"]).is_err());
        assert!(args(&["noop", "--ops"]).is_err());
        assert!(
            args(&["--impl", "xuring"]).is_err(),
            "--impl is for subcommands"
        );
        assert!(args(&["tour", "--json"]).is_err());
        assert!(args(&["msgring", "--level", "5.10"]).is_err());
        assert!(
            args(&["echo", "--quick"]).is_err(),
            "--quick is for the tour"
        );
    }
}
