//! The command line: `xuring-bench [probe|noop|read4k|alloc|all] [--rounds N] [--quick]`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use crate::Config;
use crate::pin::pin_to_one_cpu;
use crate::probe::ProbeReport;
use crate::scenarios::{SCENARIOS, find};

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Only the probe report.
    Probe,
    /// The probe and one scenario.
    One(&'static str),
    /// The probe and every scenario.
    All,
    /// The usage text.
    Help,
}

/// The parsed arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// What to run.
    pub command: Command,
    /// `--rounds N`.
    pub rounds: Option<u32>,
    /// `--quick`.
    pub quick: bool,
}

/// The usage text.
pub fn usage() -> String {
    let mut text = String::from(
        "usage: xuring-bench [probe|all|SCENARIO] [--rounds N] [--quick]\n\n\
         Probes the kernel's io_uring, then runs the benchmark tour of xuring next to the raw\n\
         io-uring crate (default: all). The process pins itself to one CPU; variants run in\n\
         turn for N rounds and the report gives medians and the median of paired ratios.\n\n\
         options:\n  --rounds N  paired rounds per case (default 20; 3 with --quick)\n  \
         --quick     a few-second smoke run with small counts\n\nscenarios:\n",
    );
    for s in SCENARIOS {
        let status = if s.entry.is_some() {
            ""
        } else {
            " (not yet available)"
        };
        text.push_str(&format!("  {:<8}  {}{status}\n", s.name, s.about));
    }
    text
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        command: Command::All,
        rounds: None,
        quick: false,
    };
    let mut named = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => parsed.quick = true,
            "--rounds" => {
                let value = args.next().ok_or("--rounds needs a number")?;
                parsed.rounds = Some(parse_rounds(&value)?);
            }
            "-h" | "--help" | "help" => parsed.command = Command::Help,
            _ if arg.starts_with("--rounds=") => {
                parsed.rounds = Some(parse_rounds(&arg["--rounds=".len()..])?);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            name => {
                if named {
                    return Err(format!("one scenario at a time (got another: {name})"));
                }
                named = true;
                parsed.command = match name {
                    "probe" => Command::Probe,
                    "all" => Command::All,
                    _ => match find(name) {
                        Some(s) => Command::One(s.name),
                        None => return Err(format!("no scenario called {name}")),
                    },
                };
            }
        }
    }
    Ok(parsed)
}

fn parse_rounds(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("--rounds takes a positive number, not {value:?}")),
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

/// Runs the tour as the binary does; returns the process's exit code.
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
    let start = Instant::now();
    let config = args.config();
    let pinning = pin_to_one_cpu();
    let probe = ProbeReport::collect(Some(pinning));
    print!("{probe}");
    if !probe.available() {
        println!("\nio_uring is not available here (see above), so no scenario can run.",);
        return ExitCode::FAILURE;
    }
    let selected: Vec<_> = match args.command {
        Command::Probe | Command::Help => Vec::new(),
        Command::All => SCENARIOS.iter().collect(),
        Command::One(name) => SCENARIOS.iter().filter(|s| s.name == name).collect(),
    };
    if selected.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!(
        "\nmode {}: {} rounds per case; ratios are A's throughput over B's (above 1: A faster)",
        config.mode, config.rounds
    );
    let mut failed = false;
    let mut summary = Vec::new();
    for scenario in selected {
        println!();
        let _ = std::io::stdout().flush();
        match scenario.entry {
            None => {
                println!(
                    "== {}: not yet available ({})",
                    scenario.name, scenario.about
                );
                summary.push(format!("{}: not yet available", scenario.name));
            }
            Some(entry) => match entry(&config) {
                Ok(output) => {
                    print!("{}", output.text);
                    summary.extend(output.summary);
                }
                Err(e) => {
                    println!("== {}: FAILED: {e}", scenario.name);
                    summary.push(format!("{}: FAILED: {e}", scenario.name));
                    failed = true;
                }
            },
        }
    }
    println!("\n== summary ({:.1} s)", start.elapsed().as_secs_f64());
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
    fn the_default_is_all() {
        let a = args(&[]).expect("parse");
        assert_eq!(a.command, Command::All);
        assert!(!a.quick);
        assert_eq!(a.config().rounds, Config::full().rounds);
    }

    #[test]
    fn scenarios_rounds_and_quick() {
        let a = args(&["noop", "--rounds", "7", "--quick"]).expect("parse");
        assert_eq!(a.command, Command::One("noop"));
        assert_eq!(a.config().rounds, 7);
        assert_eq!(a.config().mode, "quick");
        assert_eq!(
            args(&["--rounds=3", "probe"]).expect("parse").rounds,
            Some(3)
        );
        assert_eq!(
            args(&["echo"]).expect("parse").command,
            Command::One("echo")
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(args(&["nosuch"]).is_err());
        assert!(args(&["--rounds"]).is_err());
        assert!(args(&["--rounds", "0"]).is_err());
        assert!(args(&["--fast"]).is_err());
        assert!(args(&["noop", "read4k"]).is_err());
    }
}
