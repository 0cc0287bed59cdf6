//! Mosquitto started with the README's sample store settings (`examples/mosquitto/store.conf`), on a free
//! loopback port with its persistence in a folder of the caller's, stopped when dropped. Shared by the tests
//! and `benches/pipeline.rs`, so the settings the README recommends are the ones both run with.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SampleMosquitto {
    child: Child,
    pub port: u16,
}

impl SampleMosquitto {
    /// The sample file's settings, with only its listener and persistence folder replaced.
    pub fn config(dir: &Path, port: u16) -> String {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mosquitto/store.conf");
        let conf = std::fs::read_to_string(sample).expect("examples/mosquitto/store.conf");
        conf.lines()
            .map(|l| {
                if l.starts_with("listener ") {
                    format!("listener {port} 127.0.0.1")
                } else if l.starts_with("persistence_location ") {
                    format!("persistence_location {}/", dir.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Starts it, with its data in `dir`; `None` when no `mosquitto` can be run here.
    pub fn start(dir: &Path) -> Option<SampleMosquitto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        std::fs::create_dir_all(dir).ok()?;
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, Self::config(dir, port)).ok()?;
        let log = std::fs::File::create(dir.join("mosquitto.log")).ok()?;
        let spawn = |program: &str| {
            Command::new(program)
                .arg("-c")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(
                    log.try_clone()
                        .ok()
                        .map(Stdio::from)
                        .unwrap_or(Stdio::null()),
                )
                .spawn()
        };
        let child = spawn("mosquitto")
            .or_else(|_| spawn("/usr/sbin/mosquitto"))
            .ok()?;
        let mosquitto = SampleMosquitto { child, port };
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(mosquitto);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for SampleMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
