//! The `labrun` binary: parse the command line, call the library, map the result to an exit status.

fn main() {
    labrun::trace::begin();
    let code = labrun::cli::main_with(std::env::args().collect());
    std::process::exit(code);
}
