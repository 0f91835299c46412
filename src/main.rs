//! The `labrun` binary: parse the command line, call the library, map the result to an exit status.
//! Started as `/init` by a guest's kernel, it is the vm backend's agent instead.

fn main() {
    let argv0 = std::env::args().next().unwrap_or_default();
    if labrun::env::vm::guest::is_agent(&argv0) {
        labrun::env::vm::guest::main();
    }
    labrun::trace::begin();
    let code = labrun::cli::main_with(std::env::args().collect());
    std::process::exit(code);
}
