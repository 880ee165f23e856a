//! The `processes` integration tests, one binary (linked once).

mod c_abi;
mod c_abuse;
mod c_runner_lock;
mod kill_run;
mod net_faults;
mod power_cut;
mod queue_contention;
mod runner_lock;
mod storage_faults;
mod trust_processes;
