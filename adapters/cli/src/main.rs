//! The `tether` binary: `tether serve` (the default) and `tether demo`.
//! See the `tether` library's docs and `tether --help`.

fn main() -> std::process::ExitCode {
    tether::main_with(std::env::args_os())
}
