//! A real single-node Slurm cluster for the tests, from Debian's packages (scripts/setup.sh):
//! munged, slurmctld and slurmd started here (there is no systemd), everything in a temp
//! directory on free ports, and the daemons killed by pid when the last user drops it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

pub struct Cluster {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

/// The cluster this test process shares, and the lock that serialises the tests using it.
pub struct Shared {
    pub cluster: Arc<Cluster>,
    _turn: MutexGuard<'static, ()>,
}

static TURN: Mutex<()> = Mutex::new(());
static CLUSTER: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

/// The cluster of this test process (started on first use), held for one test at a time.
pub fn cluster() -> Shared {
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut slot = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = slot.upgrade().unwrap_or_else(|| {
        let c = Arc::new(Cluster::start());
        *slot = Arc::downgrade(&c);
        c
    });
    Shared {
        cluster,
        _turn: turn,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn output(program: &str, args: &[&str], conf: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    if let Some(conf) = conf {
        cmd.env("SLURM_CONF", conf);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/setup.sh installs Slurm)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "slurm test cluster: {what} within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `id -u` or `id -g` of a user.
fn id_of(flag: &str, user: &str) -> u32 {
    let (ok, text) = output("id", &[flag, user], None);
    assert!(
        ok,
        "no user {user}: scripts/setup.sh installs munge and slurm"
    );
    text.trim().parse().unwrap()
}

impl Cluster {
    fn start() -> Cluster {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the slurm tests start slurmd, which needs root"
        );
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mut cluster = Cluster {
            dir,
            daemons: Vec::new(),
        };
        cluster.start_munge();
        cluster.write_conf();
        let conf = cluster.conf();
        cluster.spawn(Command::new("slurmctld").args(["-D", "-i"]));
        wait_for("scontrol ping says UP", 20, || {
            output("scontrol", &["ping"], Some(&conf))
                .1
                .contains("is UP")
        });
        cluster.spawn(Command::new("slurmd").arg("-D"));
        wait_for("the node is idle", 20, || {
            output("sinfo", &["-h", "-o", "%T"], Some(&conf)).1.trim() == "idle"
        });
        cluster
    }

    /// munged as the munge user, with a key and a socket of this cluster's own.
    fn start_munge(&mut self) {
        let munge = self.path("munge");
        fs::create_dir_all(&munge).unwrap();
        fs::create_dir_all("/run/munge").unwrap();
        let (uid, gid) = (id_of("-u", "munge"), id_of("-g", "munge"));
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        getrandom::fill(&mut bytes).unwrap();
        fs::write(&key, bytes).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
        for p in ["/run/munge", munge.to_str().unwrap(), key.to_str().unwrap()] {
            nix::unistd::chown(p, Some(uid.into()), Some(gid.into())).unwrap();
        }
        let arg = |flag: &str, name: &str| format!("--{flag}={}", munge.join(name).display());
        let mut cmd = Command::new("munged");
        cmd.arg("--foreground").args([
            arg("socket", "socket"),
            arg("key-file", "munge.key"),
            arg("pid-file", "munged.pid"),
            arg("log-file", "munged.log"),
            arg("seed-file", "munged.seed"),
        ]);
        std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        std::os::unix::process::CommandExt::uid(&mut cmd, uid);
        self.spawn(&mut cmd);
        let socket = munge.join("socket");
        wait_for("munged's socket", 10, || socket.exists());
    }

    fn write_conf(&self) {
        let (ok, node) = output("slurmd", &["-C"], None);
        assert!(ok, "slurmd -C failed");
        let node = node.lines().next().unwrap().to_string();
        let (_, host) = output("hostname", &[], None);
        for sub in ["state", "spool"] {
            fs::create_dir_all(self.path(sub)).unwrap();
        }
        let at = |name: &str| self.path(name).display().to_string();
        let conf = format!(
            "ClusterName=labrun\n\
             SlurmctldHost={host}\n\
             SlurmUser=root\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={socket}\n\
             SlurmctldPort={ctld}\n\
             SlurmdPort={d}\n\
             StateSaveLocation={state}\n\
             SlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={ctld_pid}\n\
             SlurmdPidFile={d_pid}\n\
             SlurmctldLogFile={ctld_log}\n\
             SlurmdLogFile={d_log}\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             SchedulerParameters=batch_sched_delay=0\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             ReturnToService=2\n\
             {node}\n\
             PartitionName=grade Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            host = host.trim(),
            socket = at("munge/socket"),
            ctld = free_port(),
            d = free_port(),
            state = at("state"),
            spool = at("spool"),
            ctld_pid = at("slurmctld.pid"),
            d_pid = at("slurmd.pid"),
            ctld_log = at("slurmctld.log"),
            d_log = at("slurmd.log"),
            node = node.split(" UpTime").next().unwrap(),
        );
        fs::write(self.conf(), conf).unwrap();
    }

    fn spawn(&mut self, cmd: &mut Command) {
        let child = cmd
            .env("SLURM_CONF", self.conf())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup.sh installs Slurm)"));
        self.daemons.push(child);
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The slurm.conf every command of this cluster needs in `SLURM_CONF`.
    pub fn conf(&self) -> PathBuf {
        self.path("slurm.conf")
    }

    /// Runs a Slurm client command against this cluster: success and stdout.
    pub fn command(&self, program: &str, args: &[&str]) -> (bool, String) {
        output(program, args, Some(&self.conf()))
    }
}

impl Drop for Cluster {
    /// slurmd first (it ends the jobs' steps), then slurmctld, then munged.
    fn drop(&mut self) {
        for child in self.daemons.iter_mut().rev() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
