//! A PostgreSQL server of the test's own, in a temporary folder on a free port, for tests that stop and start
//! it: the machine's shared server must keep serving the other tests. Needs `initdb` and `pg_ctl` (PostgreSQL's
//! server package); as root, the server runs as the `postgres` user, since PostgreSQL refuses root.

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// Where `initdb` and `pg_ctl` are: on the PATH, or in Debian's versioned folder.
fn server_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

/// Whether this test runs as root: the folder `/proc/self` belongs to the process's own user.
fn as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    })
}

impl PrivatePostgres {
    /// Initialises and starts one; `None` when this machine has no PostgreSQL server programs.
    pub fn start() -> Option<PrivatePostgres> {
        let bin = server_bin()?;
        let dir = tempfile::tempdir().ok()?;
        let port = crate::support::free_port();
        let pg = PrivatePostgres { dir, bin, port };
        if as_root() {
            Command::new("chown")
                .args(["-R", "postgres"])
                .arg(pg.dir.path())
                .status()
                .ok()?;
        }
        let data = pg.data();
        let init = pg
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !init.success() {
            return None;
        }
        pg.up().then_some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts the server and waits until it accepts connections.
    pub fn up(&self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.pg_ctl(&[
            "-w",
            "-o",
            &options,
            "-l",
            &log.display().to_string(),
            "start",
        ])
    }

    /// Stops it the way an operator's restart or a failover does: connections are cut, nothing waits.
    pub fn down(&self) -> bool {
        self.pg_ctl(&["-w", "-m", "fast", "stop"])
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}
