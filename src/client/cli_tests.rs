//! Every option of `pr-client`'s main command line. Command lines are written as one string,
//! split at spaces.

use super::*;
use crate::client::report::exit::CONTRADICT;
use crate::daemon::DEFAULT_SOCKET;

fn inv_words(words: &[&str]) -> Result<Invocation, UsageError> {
    let args: Vec<String> = words.iter().map(|s| s.to_string()).collect();
    parse(&args, crate::cli::getopt::Order::Permute)
}

fn inv(line: &str) -> Result<Invocation, UsageError> {
    inv_words(&line.split_whitespace().collect::<Vec<_>>())
}

fn run(line: &str) -> Result<RunConfig, UsageError> {
    match inv(line)? {
        Invocation::Run(c) => Ok(*c),
        other => panic!("not a run: {other:?}"),
    }
}

fn code(line: &str) -> u8 {
    run(line).unwrap_err().code
}

fn in_sa_of(line: &str) -> (u8, u16) {
    match run(line).unwrap().action {
        Action::In {
            sa,
            allocation_length,
        } => (sa as u8, allocation_length),
        a => panic!("{line}: {a:?}"),
    }
}

fn out_of(action: Action) -> (u8, u8, ProutParams) {
    match action {
        Action::Out {
            sa,
            prout_type,
            params,
        } => (sa as u8, prout_type, params),
        a => panic!("{a:?}"),
    }
}

fn out(line: &str) -> (u8, u8, ProutParams) {
    out_of(run(line).unwrap().action)
}

#[test]
fn pr_in_service_actions_and_lengths() {
    for (line, sa_and_length) in [
        ("/dev/x", (0, 8192)),
        ("-k /dev/x", (0, 8192)),
        ("--read-keys -i /dev/x", (0, 8192)),
        ("-r /dev/x", (1, 8192)),
        ("--read-reservation /dev/x", (1, 8192)),
        ("-c /dev/x", (2, 8192)),
        ("--report-capabilities /dev/x", (2, 8192)),
        ("-s /dev/x", (3, 8192)),
        ("--read-status /dev/x", (3, 8192)),
        ("--read_full_status /dev/x", (3, 8192)),
        ("-l 100 /dev/x", (0, 0x100)),
        ("--alloc-length=0x20 /dev/x", (0, 0x20)),
        ("-m 100 /dev/x", (0, 100)),
        ("--maxlen=2000h /dev/x", (0, 8192)),
        ("--maxlen=8k /dev/x", (0, 8192)),
        ("--maxlen=0x10 /dev/x", (0, 16)),
    ] {
        assert_eq!(in_sa_of(line), sa_and_length, "{line}");
    }
    assert_eq!(code("-l 2001 /dev/x"), 1);
    assert_eq!(code("-m 8193 /dev/x"), 1);
    assert_eq!(code("-m ten /dev/x"), 1);
    assert_eq!(code("-k -r /dev/x"), CONTRADICT);
}

#[test]
fn pr_out_service_actions() {
    for (flags, sa) in [
        ("-G --register", 0),
        ("-R --reserve", 1),
        ("-L --release", 2),
        ("-C --clear", 3),
        ("-P --preempt", 4),
        ("-A --preempt-abort", 5),
        ("-I --register-ignore", 6),
        ("-z --replace-lost", 8),
    ] {
        for flag in flags.split(' ') {
            assert_eq!(out(&format!("-o {flag} -T 1 /d")).0, sa, "{flag}");
        }
    }
    let (sa, t, p) = out("--out -M -K 0xAB -S cd -T ex_ac -X sas,5000c50005b32001 -Q 1f -U -Z /d");
    assert_eq!((sa, t), (7, 3));
    assert_eq!((p.reservation_key, p.service_action_key), (0xab, 0xcd));
    assert!(p.unreg && p.aptpl && !p.all_tg_pt);
    assert_eq!(p.relative_target_port, 0x1f);
    assert_eq!(p.transport_ids.len(), 24);
    let (_, _, p) = out("-oY --param-sark=123abc --param_unreg -M -X 1,2 /d");
    assert!(p.all_tg_pt && p.unreg);
    assert_eq!(p.service_action_key, 0x123abc);
    let (_, _, p) = out("-o -G -X sas,5000c50005b32001 -X fcp,10000000c9f3a571 /d");
    assert_eq!(p.transport_ids.len(), 48);
    assert_eq!(out("-o -R --prout-type=wr_ex_ar /d").1, 7);
    assert_eq!(out("-o -R --prout_type 8 /d").1, 8);
}

#[test]
fn prout_contradictions_and_bad_values() {
    for (line, status) in [
        ("-G /d", 31), // PR OUT SA without --out
        ("-o /d", 31), // --out without SA
        ("-o -G -R /d", 31),
        ("-o -G -k /d", 31),
        ("-i -o -G /d", 31),
        ("-o -G -U /d", 31),
        ("-o -G -Q 1 /d", 31),
        ("-o -M /d", 31), // no TransportID
        ("-X sas,5000c50005b32001 /d", 31),
        ("--json -H /d", 31),
        ("--direct --socket=/s /d", 31),
        ("-o -G -K 12zz /d", 1),
        ("-o -G -S 0x /d", 1),
        ("-o -G -K 11223344556677889 /d", 1),
        ("-o -R -T rw /d", 1),
        ("-o -M -Q 10000 -X 1 /d", 1),
        ("-o -G -X sas,1 /d", 1),
        ("--timeout=0 /d", 1),
        ("-q /d", 1),
        ("--bogus /d", 1),
        ("/d /e", 1),
        ("-d /d /e", 1),
        ("", 1),
    ] {
        assert_eq!(code(line), status, "{line}");
    }
    let e = run("-o -G -K zz /d").unwrap_err();
    assert!(
        e.to_string().starts_with("bad argument to '--param-rk'"),
        "{e}"
    );
    assert_eq!(
        run("-o -R /d").unwrap().warnings,
        vec!["warning>>> --prout-type probably needs to be given"]
    );
}

#[test]
fn output_device_and_our_options() {
    let c = run("-HH -vv -n -y --device=/dev/sdz").unwrap();
    assert_eq!((c.hex, c.verbose, c.readonly), (2, 2, true));
    assert_eq!(c.device, "/dev/sdz");
    assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
    assert!(!c.json && !c.direct && c.timeout.is_none());
    assert!(!run("-yy /d").unwrap().readonly);
    assert!(run("--readonly /d").unwrap().readonly);
    let c = run("--socket /run/x.sock --json --timeout=1.5 /d --no-inquiry").unwrap();
    assert_eq!(c.socket, PathBuf::from("/run/x.sock"));
    assert!(c.json);
    assert_eq!(c.timeout, Some(Duration::from_millis(1500)));
    let c = run("--direct --hex --verbose -d /d").unwrap();
    assert!(c.direct && c.hex == 1 && c.verbose == 1);
    assert_eq!(inv("-h"), Ok(Invocation::Help(1)));
    assert_eq!(inv("-hh /d"), Ok(Invocation::Help(2)));
    assert_eq!(inv("--help"), Ok(Invocation::Help(1)));
    assert_eq!(inv("-V"), Ok(Invocation::Version));
    assert_eq!(inv("--version"), Ok(Invocation::Version));
}

#[test]
fn transport_id_files() {
    let dir = std::env::temp_dir().join(format!("prc-tids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("t.txt");
    let ids = "# two IDs\nsas,5000c50005b32001\n\n  fcp,10000000c9f3a571 # wwn\n";
    std::fs::write(&f, ids).unwrap();
    // The path as one word, whatever the temporary directory's name holds.
    let arg = format!("file={}", f.display());
    let Ok(Invocation::Run(c)) = inv_words(&["-o", "-G", "-X", &arg, "/d"]) else {
        panic!("not a run");
    };
    assert_eq!(out_of(c.action).2.transport_ids.len(), 48);
    assert_eq!(code("-o -G -X file=/nonexistent/x /d"), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cdb_and_parameter_list_encoding() {
    let (cdb, params) = run("-o -R -K 1 -T 3 /d").unwrap().action.encode();
    assert_eq!(cdb[..10], [0x5f, 1, 3, 0, 0, 0, 0, 0, 24, 0]);
    assert_eq!(params.len(), 24);
    assert_eq!(params[7], 1);
    let (cdb, params) = run("-s -m 512 /d").unwrap().action.encode();
    assert_eq!(cdb[..10], [0x5e, 3, 0, 0, 0, 0, 0, 2, 0, 0]);
    assert!(params.is_empty());
    assert_eq!(
        run("-s /d").unwrap().action.label(),
        "PR in (Read full status)"
    );
}
