use std::fmt;
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::command::{CommandOutput, capture};
use crate::namespace::Namespace;
use crate::sshd::{self, ADMIN_KEYS_DIR, StartFailure};
use crate::{Error, address, stale};

/// The non-root admin user every host has, with passwordless sudo.
pub const SUDO_ADMIN_USER: &str = "mpc-admin";

/// How many loopback addresses to try before giving up.
const ADDRESS_TRIES: usize = 64;

/// Programs the fixture runs on the machine.
const REQUIRED: &[(&str, &str)] = &[
    ("/usr/sbin/sshd", "openssh-server"),
    ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/sbin/useradd", "passwd"),
    ("/usr/bin/sudo", "sudo"),
    ("/usr/bin/pkill", "procps"),
    ("/usr/bin/unshare", "util-linux"),
    ("/usr/bin/nsenter", "util-linux"),
    ("/usr/bin/setpriv", "util-linux"),
];

/// How to start a host; the default is [`TestHost::start`]'s: a random free address
/// and only the standard admins.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Listen on this loopback address instead of a random one (it must be in
    /// 127.0.0.0/8 and not 127.0.0.1, and port 22 on it must be free).
    pub address: Option<Ipv4Addr>,
    /// One more admin user, like a cloud image's default user.
    pub extra_admin: Option<ExtraAdmin>,
    /// sshd with `UsePAM yes` and Debian's PAM stack (limits.d applies to logins),
    /// instead of no PAM.
    pub pam: bool,
    /// This many extra accounts in the host's `/etc/passwd`, `/etc/group`,
    /// `/etc/shadow` and `/etc/gshadow` (`filler-N`, no login), like a host with a
    /// directory's worth of local users.
    pub filler_users: usize,
}

impl HostOptions {
    /// A host like the real build hosts the benchmarks must reflect: sshd with PAM and
    /// an `/etc/passwd` of about 2 000 lines.
    pub fn realistic() -> Self {
        HostOptions {
            pam: true,
            filler_users: 2000,
            ..HostOptions::default()
        }
    }
}

/// An admin user the way cloud images have one (EC2's `ec2-user`): passwordless sudo,
/// a login shell, and the key in `~/.ssh/authorized_keys`.
#[derive(Debug, Clone)]
pub struct ExtraAdmin {
    /// The user name (`ec2-user`).
    pub user: String,
    /// The public key line to authorize (`ssh-ed25519 AAAA…`).
    pub authorized_key: String,
}

/// An admin login of a test host: the user and its private key.
#[derive(Clone)]
pub struct AdminLogin {
    /// The SSH user name (`root` or [`SUDO_ADMIN_USER`]).
    pub user: String,
    /// The private key, OpenSSH format (what an admin-key Secret's `id_rsa` holds).
    pub private_key: String,
    /// The private key as a file (mode 0600), for the OpenSSH client.
    pub private_key_path: PathBuf,
    /// The public key line.
    pub public_key: String,
}

impl fmt::Debug for AdminLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminLogin")
            .field("user", &self.user)
            .field("private_key_path", &self.private_key_path)
            .finish_non_exhaustive()
    }
}

/// A running sshd build host on its own loopback address; torn down on drop.
pub struct TestHost {
    name: String,
    dir: PathBuf,
    address: Ipv4Addr,
    host_keys: Vec<String>,
    root: AdminLogin,
    sudo_admin: AdminLogin,
    namespace: Namespace,
    sshd: Mutex<Option<Child>>,
    client_keys: AtomicU64,
}

impl fmt::Debug for TestHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestHost")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl TestHost {
    /// Starts a host: private namespace, fresh host and admin keys, sshd listening on
    /// port 22 of a free loopback address.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(&HostOptions::default())
    }

    /// Starts a host as [`TestHost::start`] does, on the given address and with the
    /// extra admin of `options` when set.
    pub fn start_with(options: &HostOptions) -> Result<Self, Error> {
        preflight()?;
        if let Some(address) = options.address {
            check_address(address)?;
        }
        if let Some(extra) = &options.extra_admin {
            check_extra_admin(extra)?;
        }
        stale::sweep_once();
        let dir = new_host_dir()?;
        let host = Self::start_in(&dir, options);
        if host.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        host
    }

    fn start_in(dir: &Path, options: &HostOptions) -> Result<Self, Error> {
        let suffix = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("test-host-{suffix}");
        prepare_etc(dir, &name)?;
        let host_keys = vec![
            keygen(&dir.join("etc/ssh/ssh_host_ed25519_key"), "ed25519", &name)?,
            keygen(&dir.join("etc/ssh/ssh_host_ecdsa_key"), "ecdsa", &name)?,
        ];
        let keys = dir.join("keys");
        fs::create_dir(&keys).map_err(Error::io("create", &keys))?;
        let root = admin_login(dir, "root")?;
        add_sudo_admin(dir)?;
        let sudo_admin = admin_login(dir, SUDO_ADMIN_USER)?;
        if let Some(extra) = &options.extra_admin {
            add_extra_admin(dir, extra)?;
        }
        add_filler_users(dir, options.filler_users)?;
        let devices = dir.join("devices");
        fs::create_dir(&devices).map_err(Error::io("create", &devices))?;
        let namespace = Namespace::start(dir, &name)?;
        let (address, listener) = match options.address {
            Some(address) => (address, start_on(dir, &namespace, address, options.pam)?),
            None => start_on_free_address(dir, &namespace, options.pam)?,
        };
        let known_hosts: String = host_keys
            .iter()
            .map(|key| format!("{address} {key}\n"))
            .collect();
        write(&dir.join("known_hosts"), &known_hosts, 0o644)?;
        fs::create_dir(dir.join("client-keys")).map_err(Error::io("create", dir))?;
        Ok(TestHost {
            name,
            dir: dir.to_owned(),
            address,
            host_keys,
            root,
            sudo_admin,
            namespace,
            sshd: Mutex::new(Some(listener)),
            client_keys: AtomicU64::new(0),
        })
    }

    /// The host's name (also its hostname inside the namespace).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The loopback address sshd listens on.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The port sshd listens on (always 22).
    pub fn port(&self) -> u16 {
        22
    }

    /// The host's ed25519 public host key, OpenSSH format (`ssh-ed25519 AAAA… name`).
    pub fn host_key(&self) -> &str {
        &self.host_keys[0]
    }

    /// Every public host key: ed25519 first, then ECDSA P-256.
    pub fn host_keys(&self) -> &[String] {
        &self.host_keys
    }

    /// A `known_hosts` file listing this host's keys under its address.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The `root` admin login.
    pub fn root(&self) -> &AdminLogin {
        &self.root
    }

    /// The non-root admin login with passwordless sudo.
    pub fn sudo_admin(&self) -> &AdminLogin {
        &self.sudo_admin
    }

    /// The host's private directory on the machine.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Also accept `public_key` for admin `user` (`root` or [`SUDO_ADMIN_USER`]).
    pub fn authorize_admin_key(&self, user: &str, public_key: &str) -> Result<(), Error> {
        if user != "root" && user != SUDO_ADMIN_USER {
            return Err(Error::Setup(format!("{user} is not an admin user")));
        }
        let path = self.dir.join(ADMIN_KEYS_DIR).join(user);
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        writeln!(file, "{}", public_key.trim()).map_err(Error::io("write", &path))
    }

    /// Runs `argv` as root on the host (inside its namespaces).
    pub fn run(&self, argv: &[&str]) -> Result<CommandOutput, Error> {
        self.namespace.run(argv, b"")
    }

    /// Runs `argv` as root on the host with `stdin`.
    pub fn run_with_stdin(&self, argv: &[&str], stdin: &[u8]) -> Result<CommandOutput, Error> {
        self.namespace.run(argv, stdin)
    }

    /// Runs a `/bin/sh` script as root on the host.
    pub fn shell(&self, script: &str) -> Result<CommandOutput, Error> {
        self.namespace.run(&["/bin/sh", "-c", script], b"")
    }

    /// The `u-*` users in the host's `/etc/passwd`, sorted.
    pub fn build_users(&self) -> Result<Vec<String>, Error> {
        let passwd = self.run(&["getent", "passwd"])?.ok("getent passwd")?;
        let mut users: Vec<String> = passwd
            .lines()
            .filter_map(|line| line.split(':').next())
            .filter(|name| name.starts_with("u-"))
            .map(str::to_owned)
            .collect();
        users.sort();
        Ok(users)
    }

    /// Logs in as `user` with the OpenSSH client and `private_key` (OpenSSH text), the
    /// way a build Task does, checking the host key, and runs `command`.
    pub fn ssh(
        &self,
        user: &str,
        private_key: &str,
        command: &str,
    ) -> Result<CommandOutput, Error> {
        let n = self.client_keys.fetch_add(1, Ordering::Relaxed);
        let key_path = self.dir.join("client-keys").join(format!("key-{n}"));
        write(&key_path, private_key, 0o600)?;
        let output = capture(self.ssh_command(user, &key_path, command), b"");
        let _ = fs::remove_file(&key_path);
        output
    }

    /// The OpenSSH client command line for `user` with the key file `key_path`.
    pub fn ssh_command(&self, user: &str, key_path: &Path, command: &str) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(["-F", "/dev/null", "-T"])
            .arg("-i")
            .arg(key_path)
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts_path().display()
            ))
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"])
            .arg(format!("{user}@{}", self.address))
            .arg("--")
            .arg(command);
        ssh
    }

    /// sshd's log so far.
    pub fn sshd_log(&self) -> String {
        fs::read_to_string(sshd::log_path(&self.dir)).unwrap_or_default()
    }

    /// Kills sshd (listener and every connection) and waits until it is gone.
    pub fn stop_sshd(&self) -> Result<(), Error> {
        let mut sshd = self.sshd.lock().unwrap_or_else(|e| e.into_inner());
        sshd::stop(&self.namespace, sshd.take())
    }

    /// Starts sshd again on the same address and waits until it listens.
    pub fn start_sshd(&self) -> Result<(), Error> {
        let mut sshd = self.sshd.lock().unwrap_or_else(|e| e.into_inner());
        if sshd.is_some() {
            return Ok(());
        }
        match sshd::start(&self.namespace, &sshd::log_path(&self.dir)) {
            Ok(child) => {
                *sshd = Some(child);
                Ok(())
            }
            Err(StartFailure::AddressInUse) => Err(Error::Setup(format!(
                "{}:22 was taken while sshd was stopped",
                self.address
            ))),
            Err(StartFailure::Other(e)) => Err(e),
        }
    }

    /// Stops and starts sshd; every open connection drops.
    pub fn restart_sshd(&self) -> Result<(), Error> {
        self.stop_sshd()?;
        self.start_sshd()
    }

    /// Stops (SIGSTOP) every sshd process: TCP connects still succeed (the kernel
    /// accepts them) but nothing answers, like a hung host.
    pub fn freeze_sshd(&self) -> Result<(), Error> {
        self.run(&["pkill", "-STOP", "-x", "sshd"])?
            .ok("freeze sshd")
            .map(drop)
    }

    /// Resumes every sshd process stopped by [`TestHost::freeze_sshd`].
    pub fn thaw_sshd(&self) -> Result<(), Error> {
        self.run(&["pkill", "-CONT", "-x", "sshd"])?
            .ok("thaw sshd")
            .map(drop)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Killing the namespace kills sshd and everything else in it.
        self.namespace.kill();
        let sshd = self.sshd.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = sshd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn preflight() -> Result<(), Error> {
    for (path, package) in REQUIRED {
        if !Path::new(path).exists() {
            return Err(Error::Missing(format!("{path} (Debian package {package})")));
        }
    }
    let euid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        });
    if euid.as_deref() != Some("0") {
        return Err(Error::NotRoot);
    }
    Ok(())
}

fn new_host_dir() -> Result<PathBuf, Error> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let base = stale::base_dir();
    fs::create_dir_all(&base).map_err(Error::io("create", &base))?;
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!(
        "{}-{n}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    ));
    fs::create_dir(&dir).map_err(Error::io("create", &dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(Error::io("chmod", &dir))?;
    write(&dir.join("owner"), &stale::owner_stamp(), 0o600)?;
    Ok(dir)
}

/// Copies the machine's `/etc` and removes what must not carry over: build users and
/// admin users of the machine, its host keys and sshd drop-ins.
fn prepare_etc(dir: &Path, name: &str) -> Result<(), Error> {
    let etc = dir.join("etc");
    let mut cp = Command::new("cp");
    cp.args(["-a", "/etc"]).arg(&etc);
    capture(cp, b"")?.ok("copy /etc")?;
    let foreign = |line: &str| line.starts_with("u-") || line.starts_with("mpc-admin:");
    for file in ["passwd", "shadow", "group", "gshadow", "subuid", "subgid"] {
        let path = etc.join(file);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let kept: String = text
            .lines()
            .filter(|l| !foreign(l))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&path, kept).map_err(Error::io("write", &path))?;
    }
    for (sub, prefix) in [
        ("ssh", "ssh_host_"),
        ("sudoers.d", "u-"),
        ("sudoers.d", "mpc-admin"),
    ] {
        let Ok(entries) = fs::read_dir(etc.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let dropins = etc.join("ssh/sshd_config.d");
    let _ = fs::remove_dir_all(&dropins);
    fs::create_dir_all(etc.join("ssh/test-admin-keys")).map_err(Error::io("create", &etc))?;
    let hosts = etc.join("hosts");
    let mut hosts_text = fs::read_to_string(&hosts).unwrap_or_default();
    hosts_text.push_str(&format!("127.0.0.1 {name}\n"));
    fs::write(&hosts, hosts_text).map_err(Error::io("write", &hosts))?;
    fs::create_dir(dir.join("home")).map_err(Error::io("create", dir))?;
    Ok(())
}

/// Generates a key pair at `path` (+ `.pub`) and returns the public key line.
fn keygen(path: &Path, kind: &str, comment: &str) -> Result<String, Error> {
    let mut keygen = Command::new("ssh-keygen");
    keygen
        .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
        .arg(path);
    capture(keygen, b"")?.ok("ssh-keygen")?;
    // ssh-keygen writes the public half next to the private one, `.pub` appended.
    let public = PathBuf::from(format!("{}.pub", path.display()));
    fs::read_to_string(&public)
        .map(|s| s.trim().to_owned())
        .map_err(Error::io("read", &public))
}

/// Creates the admin key of `user` and authorizes it.
fn admin_login(dir: &Path, user: &str) -> Result<AdminLogin, Error> {
    let private_key_path = dir.join("keys").join(user);
    let public_key = keygen(&private_key_path, "ed25519", &format!("{user}@test-admin"))?;
    let private_key =
        fs::read_to_string(&private_key_path).map_err(Error::io("read", &private_key_path))?;
    write(
        &dir.join(ADMIN_KEYS_DIR).join(user),
        &format!("{public_key}\n"),
        0o644,
    )?;
    Ok(AdminLogin {
        user: user.to_owned(),
        private_key,
        private_key_path,
        public_key,
    })
}

/// Adds the non-root admin to the host's private `/etc` (not the machine's) with
/// passwordless sudo.
fn add_sudo_admin(dir: &Path) -> Result<(), Error> {
    let mut useradd = Command::new("useradd");
    useradd
        .arg("--prefix")
        .arg(dir)
        .args(["--create-home", "--user-group", "--shell", "/bin/bash"])
        .args(["--password", "*", SUDO_ADMIN_USER]);
    capture(useradd, b"")?.ok("useradd mpc-admin")?;
    write(
        &dir.join("etc/sudoers.d").join(SUDO_ADMIN_USER),
        &format!("{SUDO_ADMIN_USER} ALL=(ALL) NOPASSWD: ALL\n"),
        0o440,
    )
}

/// A given address must be loopback, and not 127.0.0.1 (shared by everything else).
fn check_address(address: Ipv4Addr) -> Result<(), Error> {
    if !address.is_loopback() || address == Ipv4Addr::LOCALHOST {
        return Err(Error::Setup(format!(
            "{address} is not a test host address: hosts live in 127.0.0.0/8, never on 127.0.0.1"
        )));
    }
    Ok(())
}

/// The extra admin's name becomes a path and a sudoers file name: keep it plain.
fn check_extra_admin(extra: &ExtraAdmin) -> Result<(), Error> {
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    let name = &extra.user;
    if name.is_empty()
        || name.len() > 32
        || !name.chars().all(plain)
        || name.starts_with('-')
        || ["root", SUDO_ADMIN_USER].contains(&name.as_str())
    {
        return Err(Error::Setup(format!(
            "{name:?} cannot be an extra admin: lowercase letters, digits, - and _ only, \
             not root or {SUDO_ADMIN_USER}"
        )));
    }
    if extra.authorized_key.trim().is_empty() || extra.authorized_key.contains('\n') {
        return Err(Error::Setup(
            "the extra admin's key must be one public key line".into(),
        ));
    }
    Ok(())
}

/// Adds the extra admin to the host's private `/etc` with passwordless sudo and its key
/// in `~/.ssh/authorized_keys` (owned by the user, as sshd's StrictModes wants).
fn add_extra_admin(dir: &Path, extra: &ExtraAdmin) -> Result<(), Error> {
    let user = extra.user.as_str();
    let mut useradd = Command::new("useradd");
    useradd
        .arg("--prefix")
        .arg(dir)
        .args(["--create-home", "--user-group", "--shell", "/bin/bash"])
        .args(["--password", "*", user]);
    capture(useradd, b"")?.ok("useradd extra admin")?;
    write(
        &dir.join("etc/sudoers.d").join(user),
        &format!("{user} ALL=(ALL) NOPASSWD: ALL\n"),
        0o440,
    )?;
    let (uid, gid) = ids_of(dir, user)?;
    let ssh_dir = dir.join("home").join(user).join(".ssh");
    fs::create_dir_all(&ssh_dir).map_err(Error::io("create", &ssh_dir))?;
    fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700))
        .map_err(Error::io("chmod", &ssh_dir))?;
    let keys = ssh_dir.join("authorized_keys");
    write(&keys, &format!("{}\n", extra.authorized_key.trim()), 0o600)?;
    for path in [&ssh_dir, &keys] {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(Error::io("chown", path))?;
    }
    Ok(())
}

/// The uid and gid of `user` in the host's private `/etc/passwd`.
fn ids_of(dir: &Path, user: &str) -> Result<(u32, u32), Error> {
    let passwd_path = dir.join("etc/passwd");
    let passwd = fs::read_to_string(&passwd_path).map_err(Error::io("read", &passwd_path))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&user))
        .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
        .ok_or_else(|| Error::Setup(format!("{user} is missing from the host's passwd")))
}

/// Appends `count` no-login accounts to the host's account files, with ids from 20000
/// on (clear of the machine's users and of useradd's range for build users).
fn add_filler_users(dir: &Path, count: usize) -> Result<(), Error> {
    if count == 0 {
        return Ok(());
    }
    let mut passwd = String::new();
    let mut group = String::new();
    let mut shadow = String::new();
    let mut gshadow = String::new();
    for n in 0..count {
        let id = 20_000 + n;
        passwd.push_str(&format!(
            "filler-{n}:x:{id}:{id}:filler account:/nonexistent:/usr/sbin/nologin\n"
        ));
        group.push_str(&format!("filler-{n}:x:{id}:\n"));
        shadow.push_str(&format!("filler-{n}:*:19000:0:99999:7:::\n"));
        gshadow.push_str(&format!("filler-{n}:!::\n"));
    }
    for (file, text) in [
        ("passwd", passwd),
        ("group", group),
        ("shadow", shadow),
        ("gshadow", gshadow),
    ] {
        let path = dir.join("etc").join(file);
        let mut out = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        out.write_all(text.as_bytes())
            .map_err(Error::io("write", &path))?;
    }
    Ok(())
}

/// Starts sshd on the one given address.
fn start_on(
    dir: &Path,
    namespace: &Namespace,
    address: Ipv4Addr,
    pam: bool,
) -> Result<Child, Error> {
    let config_path = dir.join("etc/ssh/sshd_config");
    let config = sshd::config(address, &["root", SUDO_ADMIN_USER], pam);
    fs::write(&config_path, config).map_err(Error::io("write", &config_path))?;
    match sshd::start(namespace, &sshd::log_path(dir)) {
        Ok(child) => Ok(child),
        Err(StartFailure::AddressInUse) => Err(Error::AddressInUse(address)),
        Err(StartFailure::Other(e)) => Err(e),
    }
}

fn start_on_free_address(
    dir: &Path,
    namespace: &Namespace,
    pam: bool,
) -> Result<(Ipv4Addr, Child), Error> {
    let config_path = dir.join("etc/ssh/sshd_config");
    for _ in 0..ADDRESS_TRIES {
        let address = address::random_loopback();
        if !address::looks_free(address, 22) {
            continue;
        }
        let config = sshd::config(address, &["root", SUDO_ADMIN_USER], pam);
        fs::write(&config_path, config).map_err(Error::io("write", &config_path))?;
        match sshd::start(namespace, &sshd::log_path(dir)) {
            Ok(child) => return Ok((address, child)),
            Err(StartFailure::AddressInUse) => continue,
            Err(StartFailure::Other(e)) => return Err(e),
        }
    }
    Err(Error::NoFreeAddress(ADDRESS_TRIES))
}

/// Writes `text` to a new file at `path` with `mode`.
fn write(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(Error::io("create", path))?;
    file.write_all(text.as_bytes())
        .map_err(Error::io("write", path))?;
    // `mode` only applies to new files and is filtered by the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", path))
}
