//! `pr-client`: sg_persist's command line, sent through a qemu-pr-helper socket (or with
//! `--direct`, through SG_IO on the device), plus `probe` and `bench`.

use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::process::ExitCode;

use crate::cli::argbytes;
use crate::client::args::UsageError;
use crate::client::cli::{self, Action, Invocation, RunConfig};
use crate::client::report::{self, EXIT_HELP, Obj, exit};
use crate::client::{ClientError, Connection, Reply, bench, decode, direct, probe};
use crate::daemon::DEFAULT_SOCKET;
use crate::errors::strerror;
use crate::scsi::cdb;
use crate::scsi::pr::transport_id::hex;

const PROG: &str = "pr-client";

fn help_text(level: u8) -> String {
    let more = if level > 1 {
        "
PR OUT TYPE values (number, hex, or name):
  1 wr_ex     Write Exclusive          5 wr_ex_ro  Write Exclusive, registrants only
  3 ex_ac     Exclusive Access         6 ex_ac_ro  Exclusive Access, registrants only
                                       7 wr_ex_ar  Write Exclusive, all registrants
                                       8 ex_ac_ar  Exclusive Access, all registrants
TransportIDs (-X): hex bytes \"6,0,0,0,50,0,c5,0,...\", or fcp,<16 hex>, spi,<addr>,<rtpi>,
  sbp,<16 hex>, srp,<32 hex>, sas,<16 hex>, sop,<hex>, iqn.<name>[,i,0x<ISID>];
  '-' reads one per line from stdin, file=NAME from a file. -X may be repeated.
"
    } else {
        ""
    };
    format!(
        "Usage: {PROG} [OPTIONS] DEVICE
       {PROG} probe [--socket=PATH] [--json] [--timeout=SECS]
       {PROG} bench [--socket=PATH] [--connections=N] [--seconds=S]
                    [--command=read-keys|register] [--burst] [--json] [--timeout=SECS]
                    [DEVICE]
       {PROG} audit [--print] [JOURNALCTL ARGS...]
Sends a SCSI PERSISTENT RESERVE IN/OUT command for DEVICE through a qemu-pr-helper
socket, with sg_persist's options, and decodes the answer.

PR IN (the default is --read-keys):
  -k, --read-keys              list registered reservation keys
  -r, --read-reservation       show the reservation holder, scope and type
  -c, --report-capabilities    show the PR capability bits
  -s, --read-full-status       every registration with its TransportID
      (--read-status)          same as --read-full-status
  -l, --alloc-length=LEN       allocation length in hex (default 2000, at most 2000)
  -m, --maxlen=LEN             allocation length in decimal; 0x.., ..h or ..k
                               also accepted (default 8192)
  -i, --in                     PR IN (the default)
PR OUT (needs --out and exactly one service action):
  -o, --out                    send PR OUT
  -G, --register               register (-K old key, -S new key; -S 0 unregisters)
  -I, --register-ignore        register and ignore existing key (-S new key)
  -R, --reserve                reserve (-K key, -T type)
  -L, --release                release (-K key, -T type)
  -C, --clear                  clear every registration and the reservation (-K key)
  -P, --preempt                preempt (-K key, -S key to preempt, -T type)
  -A, --preempt-abort          preempt and abort
  -M, --register-move          register and move (-K, -S, -T, one -X, -Q, -U)
  -z, --replace-lost           replace lost reservation
  -K, --param-rk=RK            reservation key, hex with or without 0x (default 0)
  -S, --param-sark=SARK        service action reservation key, hex (default 0)
  -T, --prout-type=TYPE        type: 1,3,5,6,7,8 (hex) or wr_ex, ex_ac, wr_ex_ro,
                               ex_ac_ro, wr_ex_ar, ex_ac_ar (see -hh)
  -Z, --param-aptpl            set APTPL (persist through power loss)
  -Y, --param-alltgpt          set ALL_TG_PT (register on all target ports)
  -X, --transport-id=TIDS      TransportID(s): SPEC_I_PT for register, the
                               destination for register-move (see -hh)
  -Q, --relative-target-port=RTPI  register-move target port, hex 0..ffff
  -U, --unreg (--param-unreg)  register-move: unregister the source afterwards
Output and device:
  -H, --hex                    PR IN data in hex (-HH: the whole response)
  -v, --verbose                print the CDB (-vv: and the parameter list), and
                               a multipath map's paths
  -d, --device=DEVICE          DEVICE as an option instead of an argument
  -y, --readonly               open DEVICE read-only (-yy: read-write again)
  -n, --no-inquiry             accepted for sg_persist compatibility (no INQUIRY is sent)
  -h, --help                   this help (-hh: more)
  -V, --version                print the version
pr-client options (long only):
      --socket=PATH            helper socket (default {DEFAULT_SOCKET})
      --json                   one JSON object: status, sense, decoded payload
      --direct                 send the CDB with SG_IO on DEVICE, without a helper
                               (on a multipath map: to its paths, as the helper)
      --timeout=SECS           give up on the helper (or SG_IO) after SECS
{more}
{EXIT_HELP}"
    )
}

fn say(message: &str) {
    // Device and socket paths in the message are printed as given, as sg_persist does.
    argbytes::print_error(&format!("{PROG}: {message}\n"));
}

fn out(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Entry point.
pub fn main(_argv0: &str, args: &[String]) -> ExitCode {
    ExitCode::from(match args.first().map(String::as_str) {
        Some("probe") => subcommand("probe", probe::parse_probe(&args[1..]), run_probe),
        Some("bench") => subcommand("bench", probe::parse_bench(&args[1..]), run_bench),
        Some("audit") => run_audit(&args[1..]),
        _ => run_main(args),
    })
}

fn run_main(args: &[String]) -> u8 {
    // sg_persist's getopt_long permutes argv unless POSIXLY_CORRECT is set; so do we.
    let config = match cli::parse(args, crate::cli::getopt::Order::from_env()) {
        Ok(Invocation::Help(level)) => {
            out(&help_text(level));
            return exit::GOOD;
        }
        Ok(Invocation::Version) => {
            out(&format!("{PROG} {} (pr-helper)\n", crate::VERSION));
            return exit::GOOD;
        }
        Ok(Invocation::Run(c)) => c,
        Err(e) => {
            say(&e.message);
            say(&format!("Try '{PROG} --help' for more information."));
            return e.code;
        }
    };
    for w in &config.warnings {
        let _ = writeln!(std::io::stderr(), "{w}");
    }
    match execute(&config) {
        Ok((reply, via)) => render(&config, &reply, via),
        Err(Failure { message, code }) => {
            say(&message);
            code
        }
    }
}

struct Failure {
    message: String,
    code: u8,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match e {
            ClientError::Io(ref io) if io.kind() == std::io::ErrorKind::WouldBlock => exit::TIMEOUT,
            ClientError::Connect(..) | ClientError::Closed | ClientError::Io(_) => exit::FILE_ERROR,
            ClientError::Protocol(_) => exit::OTHER,
        };
        Failure {
            message: e.to_string(),
            code,
        }
    }
}

/// Runs the command and says which way it went: "helper", "SG_IO" (`--direct`) or
/// "multipath" (`--direct` on a dm-multipath map, through its paths).
fn execute(config: &RunConfig) -> Result<(Reply, &'static str), Failure> {
    let mode = if config.readonly { "o" } else { "w" };
    // The device's bytes as given, like sg_persist's open(argv[optind]).
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(!config.readonly)
        .open(argbytes::decode(&config.device))
        .map_err(|e| Failure {
            message: format!("cannot open {} (r{mode}): {}", config.device, strerror(&e)),
            code: exit::FILE_ERROR,
        })?;
    let (cdb16, params) = config.action.encode();
    if config.verbose > 0 {
        let name = cdb::opcode_name(cdb16[0]);
        let bytes: Vec<String> = cdb16[..10].iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(std::io::stderr(), "    {name} cdb: {}", bytes.join(" "));
        if config.verbose > 1 && !params.is_empty() {
            let _ = writeln!(std::io::stderr(), "    parameter list:");
            let _ = std::io::stderr().write_all(report::hex_dump(&params).as_bytes());
        }
    }
    if config.direct {
        let timeout_ms = config
            .timeout
            .map_or(crate::backend::DEFAULT_SGIO_TIMEOUT_MS, |t| {
                u32::try_from(t.as_millis()).unwrap_or(u32::MAX)
            });
        if let Some((reply, note)) =
            direct::run_on_map(&device, &cdb16, &params, timeout_ms, config.readonly)
        {
            if config.verbose > 0 {
                let mut err = std::io::stderr().lock();
                for line in note.report.lines() {
                    let _ = writeln!(err, "    multipath map {}: {line}", note.map);
                }
            }
            return Ok((reply, "multipath"));
        }
        let r = direct::run(device.as_fd(), &cdb16, &params, timeout_ms);
        if let (Some(e), true) = (&r.ioctl_error, config.verbose > 0) {
            let _ = writeln!(std::io::stderr(), "    SG_IO: {e}");
        }
        return Ok((r.reply, "SG_IO"));
    }
    if config.verbose > 0 {
        if let Some((map, paths)) = direct::map_paths(device.as_fd()) {
            let paths = paths.unwrap_or_else(|why| format!("unknown: {why}"));
            let _ = writeln!(
                std::io::stderr(),
                "    multipath map {map}: paths {paths} (the helper's -v log names the paths \
                 each command goes to)"
            );
        }
    }
    crate::client::check_socket_path(&config.socket)?;
    let mut conn = Connection::connect(&config.socket, config.timeout)?;
    Ok((conn.request(&cdb16, device.as_fd(), &params)?, "helper"))
}

fn render(config: &RunConfig, reply: &Reply, via: &str) -> u8 {
    let mut code = report::exit_status(reply.status(), report::sense_code(reply));
    let sa = match config.action {
        Action::In { sa, .. } => Some(sa),
        Action::Out { .. } => None,
    };
    let good = code == exit::GOOD && reply.status() == 0;
    let label = config.action.label();
    if config.json {
        let (payload, err) = match sa {
            Some(sa) if good => match decode::json(sa, &reply.payload) {
                Ok(j) => (j, None),
                Err(e) => ("null".to_owned(), Some(e.to_string())),
            },
            _ => ("null".to_owned(), None),
        };
        if err.is_some() {
            code = exit::MALFORMED;
        }
        let (cdb16, _) = config.action.encode();
        let obj = Obj::new()
            // JSON strings are Unicode: a byte that is not UTF-8 shows as U+FFFD here.
            .str(
                "device",
                &String::from_utf8_lossy(&argbytes::decode_bytes(&config.device)),
            )
            .str("via", via)
            .str("command", &label)
            .str("cdb", &hex(&cdb16[..10]))
            .raw("status", report::status_json(reply))
            .raw("sense", report::sense_json(reply))
            .str("payload_hex", &hex(&reply.payload))
            .raw("payload", payload)
            .raw(
                "decode_error",
                report::or_null(err.as_deref(), report::json_str),
            )
            .num("exit_status", code)
            .finish();
        out(&format!("{obj}\n"));
        return code;
    }
    if !good {
        say(&format!("{label}: {}", report::status_words(reply)));
        return code;
    }
    match sa {
        None => {
            if config.verbose > 0 {
                let _ = writeln!(std::io::stderr(), "{label}: command successful");
            }
        }
        Some(_) if config.hex > 0 => out(&hex_output(config.hex, reply)),
        Some(sa) => match decode::text(sa, &reply.payload) {
            Ok(t) => out(&t),
            Err(e) => {
                say(&format!("{label}: {e}"));
                return exit::MALFORMED;
            }
        },
    }
    code
}

/// `-H`: generation and additional length, then the rest in hex; `-HH`: everything.
fn hex_output(level: u8, reply: &Reply) -> String {
    let p = &reply.payload;
    if level > 1 || p.len() < 8 {
        return report::hex_dump(p);
    }
    let generation = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    let add_len = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let rest = report::hex_dump(&p[8..]);
    format!("  PR generation=0x{generation:x}, Additional length={add_len}\n{rest}")
}

/// `pr-client audit`: follows the daemon's `--audit=journal` records with journalctl (the
/// records' MESSAGE_ID, then the caller's arguments: `PR_VM=node2`, `--since=today`,
/// `-o verbose`); `--print` prints that command line instead.
fn run_audit(args: &[String]) -> u8 {
    let print = args.first().is_some_and(|a| a == "--print");
    let rest = if print { &args[1..] } else { args };
    let mut argv: Vec<String> = vec![
        "journalctl".into(),
        "--follow".into(),
        "--output=cat".into(),
        format!("MESSAGE_ID={}", crate::daemon::audit::MESSAGE_ID),
    ];
    argv.extend(rest.iter().cloned());
    if print {
        out(&format!("{}\n", argv.join(" ")));
        return exit::GOOD;
    }
    let e = crate::sys::exec_path(&argv);
    say(&format!(
        "audit: cannot run {}: {} (the records are in the journal with --audit=journal)",
        argv.join(" "),
        strerror(&e)
    ));
    exit::OTHER
}

/// Runs a subcommand with its options, or prints its help or usage error.
fn subcommand<T>(name: &str, parsed: Result<Option<T>, UsageError>, run: fn(T) -> u8) -> u8 {
    match parsed {
        Ok(Some(options)) => run(options),
        Ok(None) => {
            out(&help_text(1));
            exit::GOOD
        }
        Err(e) => {
            say(&format!("{name}: {e}"));
            e.code
        }
    }
}

fn run_probe(c: probe::ProbeConfig) -> u8 {
    match probe::probe(&c.socket, Some(c.timeout)) {
        Ok(r) => {
            out(&if c.json { r.json() + "\n" } else { r.text() });
            r.exit_status()
        }
        Err(e) => {
            say(&format!("probe: {e}"));
            Failure::from(e).code
        }
    }
}

fn run_bench(c: bench::BenchConfig) -> u8 {
    match bench::run(&c) {
        Ok(r) => {
            out(&if c.json { r.json() + "\n" } else { r.text() });
            if r.requests() == 0 {
                exit::OTHER
            } else {
                exit::GOOD
            }
        }
        Err(e) => {
            say(&format!("bench: {e}"));
            match e {
                bench::BenchError::Client(e) => Failure::from(e).code,
                bench::BenchError::Device(..) => exit::FILE_ERROR,
                bench::BenchError::Thread(_) => exit::OTHER,
            }
        }
    }
}
