//! Every option of `pr-client`'s main command line.

use super::*;

fn run(args: &[&str]) -> Result<RunConfig, UsageError> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    match parse(&args, crate::cli::getopt::Order::Permute)? {
        Invocation::Run(c) => Ok(*c),
        other => panic!("not a run: {other:?}"),
    }
}

fn inv(args: &[&str]) -> Result<Invocation, UsageError> {
    parse(
        &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        crate::cli::getopt::Order::Permute,
    )
}

fn in_sa_of(args: &[&str]) -> (u8, u16) {
    match run(args).unwrap().action {
        Action::In {
            sa,
            allocation_length,
        } => (sa as u8, allocation_length),
        a => panic!("{a:?}"),
    }
}

fn out_of(args: &[&str]) -> (u8, u8, ProutParams) {
    match run(args).unwrap().action {
        Action::Out {
            sa,
            prout_type,
            params,
        } => (sa as u8, prout_type, params),
        a => panic!("{a:?}"),
    }
}

#[test]
fn pr_in_service_actions_and_lengths() {
    assert_eq!(in_sa_of(&["/dev/x"]), (0, 8192));
    assert_eq!(in_sa_of(&["-k", "/dev/x"]), (0, 8192));
    assert_eq!(in_sa_of(&["--read-keys", "-i", "/dev/x"]), (0, 8192));
    assert_eq!(in_sa_of(&["-r", "/dev/x"]).0, 1);
    assert_eq!(in_sa_of(&["--read-reservation", "/dev/x"]).0, 1);
    assert_eq!(in_sa_of(&["-c", "/dev/x"]).0, 2);
    assert_eq!(in_sa_of(&["--report-capabilities", "/dev/x"]).0, 2);
    assert_eq!(in_sa_of(&["-s", "/dev/x"]).0, 3);
    assert_eq!(in_sa_of(&["--read-status", "/dev/x"]).0, 3);
    assert_eq!(in_sa_of(&["--read_full_status", "/dev/x"]).0, 3);
    assert_eq!(in_sa_of(&["-l", "100", "/dev/x"]).1, 0x100);
    assert_eq!(in_sa_of(&["--alloc-length=0x20", "/dev/x"]).1, 0x20);
    assert_eq!(in_sa_of(&["-m", "100", "/dev/x"]).1, 100);
    assert_eq!(in_sa_of(&["--maxlen=2000h", "/dev/x"]).1, 8192);
    assert_eq!(in_sa_of(&["--maxlen=8k", "/dev/x"]).1, 8192);
    assert_eq!(in_sa_of(&["--maxlen=0x10", "/dev/x"]).1, 16);
    assert_eq!(run(&["-l", "2001", "/dev/x"]).unwrap_err().code, 1);
    assert_eq!(run(&["-m", "8193", "/dev/x"]).unwrap_err().code, 1);
    assert_eq!(run(&["-m", "ten", "/dev/x"]).unwrap_err().code, 1);
    assert_eq!(
        run(&["-k", "-r", "/dev/x"]).unwrap_err().code,
        crate::client::report::exit::CONTRADICT
    );
}

#[test]
fn pr_out_service_actions() {
    for (flag, sa) in [
        ("-G", 0),
        ("--register", 0),
        ("-R", 1),
        ("--reserve", 1),
        ("-L", 2),
        ("--release", 2),
        ("-C", 3),
        ("--clear", 3),
        ("-P", 4),
        ("--preempt", 4),
        ("-A", 5),
        ("--preempt-abort", 5),
        ("-I", 6),
        ("--register-ignore", 6),
        ("-z", 8),
        ("--replace-lost", 8),
    ] {
        assert_eq!(out_of(&["-o", flag, "-T", "1", "/d"]).0, sa, "{flag}");
    }
    let (sa, t, p) = out_of(&[
        "--out",
        "-M",
        "-K",
        "0xAB",
        "-S",
        "cd",
        "-T",
        "ex_ac",
        "-X",
        "sas,5000c50005b32001",
        "-Q",
        "1f",
        "-U",
        "-Z",
        "/d",
    ]);
    assert_eq!((sa, t), (7, 3));
    assert_eq!((p.reservation_key, p.service_action_key), (0xab, 0xcd));
    assert!(p.unreg && p.aptpl && !p.all_tg_pt);
    assert_eq!(p.relative_target_port, 0x1f);
    assert_eq!(p.transport_ids.len(), 24);
    let (_, _, p) = out_of(&[
        "-oY",
        "--param-sark=123abc",
        "--param_unreg",
        "-M",
        "-X",
        "1,2",
        "/d",
    ]);
    assert!(p.all_tg_pt && p.unreg);
    assert_eq!(p.service_action_key, 0x123abc);
    let (_, _, p) = out_of(&[
        "-o",
        "-G",
        "-X",
        "sas,5000c50005b32001",
        "-X",
        "fcp,10000000c9f3a571",
        "/d",
    ]);
    assert_eq!(p.transport_ids.len(), 48);
    assert_eq!(out_of(&["-o", "-R", "--prout-type=wr_ex_ar", "/d"]).1, 7);
    assert_eq!(out_of(&["-o", "-R", "--prout_type", "8", "/d"]).1, 8);
}

#[test]
fn prout_contradictions_and_bad_values() {
    let code = |a: &[&str]| run(a).unwrap_err().code;
    assert_eq!(code(&["-G", "/d"]), 31); // PR OUT SA without --out
    assert_eq!(code(&["-o", "/d"]), 31); // --out without SA
    assert_eq!(code(&["-o", "-G", "-R", "/d"]), 31);
    assert_eq!(code(&["-o", "-G", "-k", "/d"]), 31);
    assert_eq!(code(&["-i", "-o", "-G", "/d"]), 31);
    assert_eq!(code(&["-o", "-G", "-U", "/d"]), 31);
    assert_eq!(code(&["-o", "-G", "-Q", "1", "/d"]), 31);
    assert_eq!(code(&["-o", "-M", "/d"]), 31); // no TransportID
    assert_eq!(code(&["-X", "sas,5000c50005b32001", "/d"]), 31);
    assert_eq!(code(&["--json", "-H", "/d"]), 31);
    assert_eq!(code(&["--direct", "--socket=/s", "/d"]), 31);
    assert_eq!(code(&["-o", "-G", "-K", "12zz", "/d"]), 1);
    assert_eq!(code(&["-o", "-G", "-S", "0x", "/d"]), 1);
    assert_eq!(code(&["-o", "-G", "-K", "11223344556677889", "/d"]), 1);
    assert_eq!(code(&["-o", "-R", "-T", "rw", "/d"]), 1);
    assert_eq!(code(&["-o", "-M", "-Q", "10000", "-X", "1", "/d"]), 1);
    assert_eq!(code(&["-o", "-G", "-X", "sas,1", "/d"]), 1);
    assert_eq!(code(&["--timeout=0", "/d"]), 1);
    assert_eq!(code(&["-q", "/d"]), 1);
    assert_eq!(code(&["--bogus", "/d"]), 1);
    assert_eq!(code(&["/d", "/e"]), 1);
    assert_eq!(code(&["-d", "/d", "/e"]), 1);
    assert_eq!(code(&[]), 1);
    let e = run(&["-o", "-G", "-K", "zz", "/d"]).unwrap_err();
    assert!(
        e.to_string().starts_with("bad argument to '--param-rk'"),
        "{e}"
    );
    assert_eq!(
        run(&["-o", "-R", "/d"]).unwrap().warnings,
        vec!["warning>>> --prout-type probably needs to be given"]
    );
}

#[test]
fn output_device_and_our_options() {
    let c = run(&["-HH", "-vv", "-n", "-y", "--device=/dev/sdz"]).unwrap();
    assert_eq!((c.hex, c.verbose, c.readonly), (2, 2, true));
    assert_eq!(c.device, "/dev/sdz");
    assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
    assert!(!c.json && !c.direct && c.timeout.is_none());
    assert!(!run(&["-yy", "/d"]).unwrap().readonly);
    assert!(run(&["--readonly", "/d"]).unwrap().readonly);
    let c = run(&[
        "--socket",
        "/run/x.sock",
        "--json",
        "--timeout=1.5",
        "/d",
        "--no-inquiry",
    ])
    .unwrap();
    assert_eq!(c.socket, PathBuf::from("/run/x.sock"));
    assert!(c.json);
    assert_eq!(c.timeout, Some(Duration::from_millis(1500)));
    let c = run(&["--direct", "--hex", "--verbose", "-d", "/d"]).unwrap();
    assert!(c.direct && c.hex == 1 && c.verbose == 1);
    assert_eq!(inv(&["-h"]), Ok(Invocation::Help(1)));
    assert_eq!(inv(&["-hh", "/d"]), Ok(Invocation::Help(2)));
    assert_eq!(inv(&["--help"]), Ok(Invocation::Help(1)));
    assert_eq!(inv(&["-V"]), Ok(Invocation::Version));
    assert_eq!(inv(&["--version"]), Ok(Invocation::Version));
}

#[test]
fn transport_id_files() {
    let dir = std::env::temp_dir().join(format!("prc-tids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("t.txt");
    std::fs::write(
        &f,
        "# two IDs\nsas,5000c50005b32001\n\n  fcp,10000000c9f3a571 # wwn\n",
    )
    .unwrap();
    let arg = format!("file={}", f.display());
    let (_, _, p) = out_of(&["-o", "-G", "-X", &arg, "/d"]);
    assert_eq!(p.transport_ids.len(), 48);
    assert_eq!(
        run(&["-o", "-G", "-X", "file=/nonexistent/x", "/d"])
            .unwrap_err()
            .code,
        1
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cdb_and_parameter_list_encoding() {
    let (cdb, params) = run(&["-o", "-R", "-K", "1", "-T", "3", "/d"])
        .unwrap()
        .action
        .encode();
    assert_eq!(cdb[..10], [0x5f, 1, 3, 0, 0, 0, 0, 0, 24, 0]);
    assert_eq!(params.len(), 24);
    assert_eq!(params[7], 1);
    let (cdb, params) = run(&["-s", "-m", "512", "/d"]).unwrap().action.encode();
    assert_eq!(cdb[..10], [0x5e, 3, 0, 0, 0, 0, 0, 2, 0, 0]);
    assert!(params.is_empty());
    assert_eq!(
        run(&["-s", "/d"]).unwrap().action.label(),
        "PR in (Read full status)"
    );
}
