//! The project's `groundhog` binary: the sim crate's CLI over the project's catalogue.

fn main() -> std::process::ExitCode {
    groundhog_sim::cli::main(groundhog_scenarios::catalogue())
}
