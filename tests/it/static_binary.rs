//! The release binary is static: copied alone into an empty directory (and
//! /etc/hosts, /etc/resolv.conf, /tmp), it runs there through chroot with
//! no C library, no /dev, no CA bundle and no cue: init, vet and build
//! with no registry, publish and get against a loopback registry by
//! 127.0.0.1 and by localhost, and a TLS registry that is refused with a
//! clear message rather than a panic.

use crate::registry_server::TestRegistry;
use crate::support::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An empty root with opm at /opm.
struct Jail {
    root: tempfile::TempDir,
}

impl Jail {
    fn new() -> Jail {
        let root = tempdir();
        let r = root.path();
        // A hard link where it can be: a copy is a file opened for
        // writing, and a test thread that forks meanwhile holds it open
        // until its exec, so running it fails with ETXTBSY (`opm` retries).
        if std::fs::hard_link(env!("CARGO_BIN_EXE_opm"), r.join("opm")).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_opm"), r.join("opm")).unwrap();
        }
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::copy("/etc/hosts", r.join("etc/hosts")).unwrap();
        std::fs::write(r.join("etc/resolv.conf"), std::fs::read("/etc/resolv.conf").unwrap_or_default()).unwrap();
        for d in ["tmp", "work", "cache", "home"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        Jail { root }
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.root.path().join(inside.trim_start_matches('/'))
    }

    /// `/opm ARGS` inside the jail, in directory `cwd` (inside), with
    /// nothing of this machine's environment.
    fn opm(&self, cwd: &str, registry: &str, args: &[&str]) -> std::process::Output {
        let root = std::ffi::CString::new(self.root.path().as_os_str().as_encoded_bytes()).unwrap();
        let dir = std::ffi::CString::new(cwd).unwrap();
        let mut cmd = Command::new("/opm");
        cmd.env_clear()
            .env("HOME", "/home")
            .env("CUE_CACHE_DIR", "/cache")
            .env("CUE_REGISTRY", registry)
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(std::process::Stdio::null());
        // SAFETY: chroot and chdir are async-signal-safe; they run in the
        // forked child before exec and touch no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(dir.as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // ETXTBSY lasts only until the forking thread's child execs.
        let mut tries = 0;
        let out = loop {
            match cmd.output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                out => break out.expect("running /opm in the jail (tests run as root)"),
            }
        };
        assert!(!stderr(&out).contains("panicked") && !stderr(&out).contains("goroutine"), "{}", stderr(&out));
        out
    }
}

fn is_static(binary: &Path) -> bool {
    // `ldd` says so for a binary with no interpreter.
    let out = run(Command::new("ldd").arg(binary));
    stdout(&out).contains("not a dynamic executable") || stderr(&out).contains("not a dynamic executable")
}

#[test]
fn the_static_binary_runs_alone_in_an_empty_root() {
    let binary = Path::new(env!("CARGO_BIN_EXE_opm"));
    if !cfg!(target_feature = "crt-static") {
        // `make DYNAMIC=1`: the binary needs the C library; nothing to jail.
        assert!(!is_static(binary), "a DYNAMIC=1 build links the C library");
        return;
    }
    assert!(is_static(binary), "the release build is static");
    let jail = Jail::new();

    let out = jail.opm("/", "none", &["version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("cuelang.org/go"), "{}", stdout(&out));

    // No registry: the core model comes from inside the binary.
    let out = jail.opm("/work", "none", &["mod", "init", "example.com/app@v0", "--dir", "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = jail.opm("/work/app", "none", &["mod", "vet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = jail.opm("/work/app", "none", &["mod", "build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("kind: Deployment"), "{}", stdout(&out));

    // A loopback registry, by address and by name (/etc/hosts).
    let reg = TestRegistry::start();
    let port = reg.host.rsplit(':').next().unwrap();
    let by_address = format!("127.0.0.1:{port}+insecure");
    let by_name = format!("localhost:{port}+insecure");
    let out = jail.opm("/work", "none", &["mod", "init", "example.com/lib@v0", "--dir", "lib", "--template", "cue"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = jail.opm("/work/lib", &by_address, &["mod", "publish", "v0.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = jail.opm("/work/app", &by_name, &["mod", "get", "example.com/lib@v0.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(jail.path("/work/app/cue.mod/module.cue")).unwrap().contains("example.com/lib@v0"));
    assert!(jail.path("/cache/mod/extract/example.com/lib@v0.1.0").is_dir());

    // A name that does not resolve is said to be one.
    let out = jail.opm("/work/app", "nosuchhost.invalid:5000+insecure", &["mod", "get", "example.com/other@v0.1.0"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot resolve registry host nosuchhost.invalid"), "{}", stderr(&out));

    // No CA bundle at all: the built-in roots do not trust a test CA, and
    // opm says so.
    let tls = TestRegistry::start_with_tls();
    let out = jail.opm("/work/app", &format!("{}+secure", tls.host), &["mod", "get", "example.com/other@v0.1.0"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("certificate") && stderr(&out).contains("not trusted"), "{}", stderr(&out));
}
