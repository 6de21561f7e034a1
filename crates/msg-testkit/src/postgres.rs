//! A real PostgreSQL server for the tests of msg-reliable's PostgreSQL
//! backend.
//!
//! [`server`] is the one tests share: the server named by the
//! `MSG_TEST_POSTGRES` connection string if that is set (CI sets it, see
//! `.ci/run`), otherwise a throwaway cluster this process starts once
//! (`initdb` and `pg_ctl` on a Unix socket in a temporary directory). When
//! neither is possible, because no PostgreSQL binaries are installed, it
//! prints why and returns `None`, and the test returns early: skipped, but
//! never silently. [`Cluster::start`] starts a cluster of a test's own, for
//! tests that stop and restart the server.
//!
//! Binaries are looked for in `MSG_TEST_POSTGRES_BIN` (a directory), then
//! in `/usr/lib/postgresql/<version>/bin` (newest first), then on `PATH`.
//! PostgreSQL refuses to run as root, so as root the cluster runs as user
//! `nobody` (through `runuser`).
//!
//! A cluster stops and its directory is deleted when its [`Cluster`] is
//! dropped, or when this process exits, however it exits: a shell that
//! runs as the cluster's keeper waits for its standard input, a pipe from
//! this process, to close.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable with the connection string of a server to test
/// against.
pub const ENV: &str = "MSG_TEST_POSTGRES";

/// The server tests share, or `None` (with the reason printed to stderr)
/// when there is none and none can be started.
///
/// # Panics
///
/// If PostgreSQL binaries exist but a cluster cannot be started: a broken
/// setup must fail the test, not skip it.
pub fn server(test: &str) -> Option<&'static str> {
    static SHARED: OnceLock<Option<(String, Option<Cluster>)>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        if let Ok(url) = std::env::var(ENV) {
            if !url.trim().is_empty() {
                return Some((url, None));
            }
        }
        let cluster = Cluster::start()?;
        Some((cluster.conninfo().to_owned(), Some(cluster)))
    });
    match shared {
        Some((url, _)) => Some(url.as_str()),
        None => {
            eprintln!("{}", skip_reason(test));
            None
        }
    }
}

/// The message a test prints when it is skipped for want of a server.
pub fn skip_reason(test: &str) -> String {
    format!(
        "SKIPPED {test}: no PostgreSQL server: {ENV} is unset and no PostgreSQL binaries \
         (initdb, pg_ctl, postgres) were found in ${ENV}_BIN, /usr/lib/postgresql/*/bin or PATH; \
         install PostgreSQL (Debian: apt-get install postgresql) to run it"
    )
}

/// A name no other caller in this process gets, for a test's schema.
pub fn unique_schema(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The directory with `initdb`, `pg_ctl` and `postgres`, if there is one.
pub fn bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os(format!("{ENV}_BIN")) {
        let dir = PathBuf::from(dir);
        return has_all(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_all(dir))
}

/// A throwaway PostgreSQL cluster on a Unix socket, stopped and deleted on
/// drop.
///
/// Durable as configured by default (`fsync` and `synchronous_commit` on),
/// except that the WAL is flushed with `fsync` rather than Linux's default
/// `fdatasync`: on the development machines `pg_test_fsync` measures
/// `fdatasync` at about 2.4 ms a flush and `fsync` at about 0.5 ms, and
/// choosing the faster durable method is what `pg_test_fsync` is for.
#[derive(Debug)]
pub struct Cluster {
    conninfo: String,
    dir: PathBuf,
    bin: PathBuf,
    /// As root: the user the cluster runs as.
    user: Option<String>,
    /// The keeper's stdin: closing it stops the cluster.
    keeper: Mutex<Option<(Child, ChildStdin)>>,
}

impl Cluster {
    /// Starts a new cluster (`initdb`, then `pg_ctl start`), or returns
    /// `None` if there are no PostgreSQL binaries.
    ///
    /// # Panics
    ///
    /// If the binaries exist and the cluster does not start.
    pub fn start() -> Option<Self> {
        let bin = bin_dir()?;
        let user = is_root().then(|| "nobody".to_owned());
        let dir = std::env::temp_dir().join(format!(
            "msg-pg-{}-{}",
            std::process::id(),
            unique_schema("c")
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        if let Some(user) = &user {
            let uid = id(user, "-u");
            let gid = id(user, "-g");
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown cluster dir");
        }
        let q = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
        // The keeper: initialises and starts the cluster, says "ready",
        // then waits for its stdin to close and stops and deletes it.
        let script = r#"set -e
"$1/initdb" -D "$2/data" -U postgres -A trust -E UTF8 --no-sync >"$2/initdb.log" 2>&1
cat >>"$2/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$2'
max_connections = 200
wal_sync_method = fsync
EOF
"$1/pg_ctl" -D "$2/data" -l "$2/server.log" -w -t 60 start >/dev/null
echo ready
read _ || true
"$1/pg_ctl" -D "$2/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$2"
"#;
        let mut cmd = as_user(&user, "sh");
        cmd.args(["-c", script, "keeper", &q(&bin), &q(&dir)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start the PostgreSQL keeper shell");
        let stdin = child.stdin.take().expect("keeper stdin");
        let stdout = child.stdout.take().expect("keeper stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read keeper");
        if line.trim() != "ready" {
            let log = std::fs::read_to_string(dir.join("initdb.log")).unwrap_or_default();
            let server = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!(
                "PostgreSQL binaries in {} but the cluster did not start:\n{log}\n{server}",
                bin.display()
            );
        }
        let conninfo = format!("host={} user=postgres dbname=postgres", q(&dir));
        Some(Self {
            conninfo,
            dir,
            bin,
            user,
            keeper: Mutex::new(Some((child, stdin))),
        })
    }

    /// The connection string (`host=<socket dir> user=postgres
    /// dbname=postgres`).
    pub fn conninfo(&self) -> &str {
        &self.conninfo
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data.
    ///
    /// # Panics
    ///
    /// If `pg_ctl` fails.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// Starts the server again after [`stop`](Self::stop) and waits until it
    /// accepts connections.
    ///
    /// # Panics
    ///
    /// If `pg_ctl` fails.
    pub fn restart(&self) {
        let log = self.dir.join("server.log");
        self.pg_ctl(&[
            "-l",
            log.to_str().expect("utf-8"),
            "-w",
            "-t",
            "60",
            "start",
        ]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data");
        let status = as_user(&self.user, self.bin.join("pg_ctl").to_str().expect("utf-8"))
            .arg("-D")
            .arg(&data)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl");
        assert!(status.success(), "pg_ctl {args:?}: {status}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mut child, mut stdin)) = keeper {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

fn as_user(user: &Option<String>, program: &str) -> Command {
    match user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--", program]);
            cmd
        }
        None => Command::new(program),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn id(user: &str, flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no user {user}"))
}
