//! `labrun image ls | build NOTEBOOK... | rm NAME... | prune`: the layer cache from the command
//! line.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use crate::env;
use crate::exit_code;
use crate::image::{Cache, ImageError, vm_files};
use crate::notebook::{self, ParseOptions};
use crate::plan::{self, RunOptions};
use crate::units;

#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// List the cached layers and the vm backend's files: key, size, last use, what each is.
    Ls,
    /// Build the image and setup layers of notebooks without running their cells.
    Build {
        #[arg(required = true, value_name = "NOTEBOOK")]
        notebooks: Vec<PathBuf>,
        /// Build the setup steps' layers afresh, ignoring the cache.
        #[arg(long)]
        rebuild: bool,
    },
    /// Remove layers (by key, a unique key prefix, or what `ls` says they are) and every
    /// layer built on them.
    Rm {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove what interrupted builds left, replaced layers, and layers and vm files unused for
    /// a while.
    Prune {
        /// Remove layers and vm files not used for this long (30s, 12h, 7d).
        #[arg(long, value_name = "DURATION", default_value = "30d")]
        unused_for: String,
        /// Remove every layer and vm file.
        #[arg(long, conflicts_with = "unused_for")]
        all: bool,
    },
}

fn fail(message: impl std::fmt::Display, status: i32) -> i32 {
    let _ = writeln!(std::io::stderr(), "labrun: error: {message}");
    status
}

/// Runs one `labrun image` command; returns the exit status.
pub fn main(args: ImageArgs) -> i32 {
    if let ImageCommand::Build { notebooks, rebuild } = &args.command {
        return build(notebooks, *rebuild);
    }
    let cache = match Cache::open() {
        Ok(c) => c,
        Err(e) => return fail(e, exit_code::ENVIRONMENT),
    };
    let done = match args.command {
        ImageCommand::Ls => {
            list(&cache);
            return exit_code::PASSED;
        }
        ImageCommand::Rm { names } => names.iter().try_fold(0u64, |freed, name| {
            let removed = cache.remove(name)?;
            for key in &removed.layers {
                println!("removed {key}");
            }
            Ok::<u64, ImageError>(freed + removed.bytes)
        }),
        ImageCommand::Prune { unused_for, all } => {
            let age = if all {
                None
            } else {
                match units::parse_duration(&unused_for) {
                    Ok(d) => Some(d),
                    Err(e) => return fail(format!("--unused-for: {e}"), exit_code::USAGE),
                }
            };
            cache.prune(age).map(|removed| {
                println!("removed {} layers", removed.layers.len());
                if !removed.vm_files.is_empty() {
                    println!("removed {} vm files", removed.vm_files.len());
                }
                removed.bytes
            })
        }
        ImageCommand::Build { .. } => unreachable!("handled above"),
    };
    match done {
        Ok(bytes) => {
            println!("freed {}", units::show_size(bytes));
            exit_code::PASSED
        }
        Err(ImageError::Invalid { image, problem }) => {
            fail(format!("'{image}' {problem}"), exit_code::USAGE)
        }
        Err(e) => fail(e, exit_code::ENVIRONMENT),
    }
}

fn list(cache: &Cache) {
    println!("{:<17}  {:>9}  {:>10}  WHAT", "LAYER", "SIZE", "LAST USED");
    let now = SystemTime::now();
    let used = |t: Option<SystemTime>| {
        t.map(|t| ago(now.duration_since(t).unwrap_or_default()))
            .unwrap_or_else(|| "never".into())
    };
    for l in &cache.layers() {
        let key: String = l.key.chars().take(17).collect();
        println!(
            "{key:<17}  {:>9}  {:>10}  {}",
            units::show_size(l.size),
            used(l.last_used),
            l.what
        );
    }
    // The vm backend's files, under their file names, then what they take against their budget.
    let vm = vm_files::list(cache.root());
    for f in &vm {
        let name = f.path.file_name().unwrap_or_default().to_string_lossy();
        let key: String = name.chars().take(17).collect();
        println!(
            "{key:<17}  {:>9}  {:>10}  {}",
            units::show_size(f.size),
            used(f.last_used),
            f.what
        );
    }
    if !vm.is_empty() {
        let total = units::show_size(vm.iter().map(|f| f.size).sum());
        match vm_files::budget() {
            Ok(Some(budget)) => println!(
                "\nvm files: {total} of a {} budget (LABRUN_VM_CACHE_MAX); a vm run's end \
                 removes the least recently used beyond it",
                units::show_size(budget)
            ),
            Ok(None) => println!("\nvm files: {total}, never trimmed (LABRUN_VM_CACHE_MAX=none)"),
            Err(e) => println!("\nvm files: {total} ({e})"),
        }
    }
}

/// `3 min ago`, as a person says it.
fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86400),
    }
}

/// Builds each notebook's environment (image and setup layers) and tears it down.
fn build(notebooks: &[PathBuf], rebuild: bool) -> i32 {
    let opts = RunOptions {
        rebuild,
        ..RunOptions::default()
    };
    let mut status = exit_code::PASSED;
    for path in notebooks {
        let outcome = notebook::load(path, &ParseOptions::default())
            .map_err(|e| (exit_code::USAGE, e.to_string()))
            .and_then(|nb| plan::plan(nb, &opts).map_err(|e| (exit_code::USAGE, e.to_string())))
            .and_then(|plan| {
                env::build(&plan.env)
                    .map(drop)
                    .map_err(|e| (exit_code::ENVIRONMENT, format!("{}: {e}", path.display())))
            });
        match outcome {
            Ok(()) => println!("{}: image ready", path.display()),
            Err((code, message)) => status = exit_code::combine(status, fail(message, code)),
        }
    }
    status
}
