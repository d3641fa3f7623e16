//! Process groups: a `wrangler dev` and the workerd under it are stopped
//! as a whole (TERM, then KILL), never by name.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn signal_group(pgid: u32, signal: &str) {
    // `--` keeps procps `kill` from reading `-<pgid>` as an option.
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

fn wait_exit(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Stops a child started with `process_group(0)` and everything in its
/// group: TERM, KILL after 10 s (a version's watchdog leader ends its group
/// itself once wrangler is gone), and KILL for stragglers that outlived
/// the leader. xtask stops its own `wrangler dev` processes with it too.
pub fn stop_group(child: &mut Child) {
    let pgid = child.id();
    if !matches!(child.try_wait(), Ok(Some(_))) {
        signal_group(pgid, "-TERM");
        if !wait_exit(child, Duration::from_secs(10)) {
            signal_group(pgid, "-KILL");
            wait_exit(child, Duration::from_secs(5));
        }
    }
    signal_group(pgid, "-KILL");
}
