//! What the numbers were measured on.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

/// The machine and software versions of a run, printed above the table.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Date of the run, `YYYY-MM-DD` in UTC.
    pub date: String,
    /// Cores available to this process.
    pub cores: usize,
    /// CPU model from `/proc/cpuinfo`, or `"unknown"`.
    pub cpu: String,
    /// Kernel release from `/proc/sys/kernel/osrelease`, or `"unknown"`.
    pub kernel: String,
    /// `rustc --version` of the compiler that built this binary.
    pub rustc: String,
    /// Version of the libzmq linked in, such as `"4.3.4"`.
    pub libzmq: String,
    /// Cargo profile this binary was built with: `"release"` or `"debug"`.
    pub profile: &'static str,
}

impl Machine {
    /// Look at the machine we are running on. Reads two small files under
    /// `/proc`; never fails (unknown values read `"unknown"`).
    pub fn detect() -> Self {
        let (major, minor, patch) = zmq::version();
        Machine {
            date: utc_date(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            ),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| cpu_model(&info))
                .unwrap_or_else(|| "unknown".to_owned()),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            rustc: env!("MSG_BENCHES_RUSTC").to_owned(),
            libzmq: format!("{major}.{minor}.{patch}"),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }
}

/// The first `model name` line of `/proc/cpuinfo` (x86), or the first
/// `Model`/`CPU part` line on other architectures.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "CPU part"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == *key).then(|| v.trim().to_owned())
        })
    })
}

/// `secs` since the Unix epoch as a `YYYY-MM-DD` date (proleptic Gregorian,
/// UTC), by the days-to-civil algorithm of Howard Hinnant.
fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_date_of_known_instants() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_735_689_599), "2024-12-31");
        assert_eq!(utc_date(1_735_689_600), "2025-01-01");
    }

    #[test]
    fn cpu_model_reads_the_first_model_name() {
        let info = "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nprocessor\t: 1\nmodel name\t: Other\n";
        assert_eq!(cpu_model(info).as_deref(), Some("Some CPU @ 2.0GHz"));
        assert_eq!(cpu_model("nothing"), None);
    }
}
