//! `getopt_long`, the applets' only command-line parser.
//!
//! C programs accept `--name value`, `--name=value`, `-n value`, `-nvalue`, clusters (`-qv`,
//! `-qk P`), unambiguous long prefixes (`--sock=P`), options after positional arguments (GNU
//! permutation, unless `POSIXLY_CORRECT` is set: see [`Order`]) and `--`. [`normalize`] reads
//! argv with glibc's rules and errors, and returns the options in order, each by its full long
//! name: the daemon acts on them in that order, as C does; pr-client reads them by name
//! through [`Options`].

use std::fmt;

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HasArg {
    No,
    Required,
    /// An optional argument: only `--name=value` (or `-nvalue`) gives one, as getopt's `::`.
    Optional,
}

/// One option as `struct option` and the short-option string describe it.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    pub short: Option<char>,
    pub long: &'static str,
    pub has_arg: HasArg,
}

impl OptSpec {
    /// An option with both spellings.
    pub const fn new(short: char, long: &'static str, has_arg: HasArg) -> Self {
        OptSpec {
            short: Some(short),
            long,
            has_arg,
        }
    }
    /// A long-only option.
    pub const fn long_only(long: &'static str, has_arg: HasArg) -> Self {
        OptSpec {
            short: None,
            long,
            has_arg,
        }
    }
    /// This option, given with `value`.
    fn with(&self, value: Option<String>) -> Arg {
        Arg::Opt {
            name: self.long,
            value,
        }
    }
}

/// Whether options may follow a non-option argument. glibc's getopt_long decides it from the
/// environment when the short-option string starts with neither `+` nor `-` (QEMU's and
/// sg_persist's do not): it permutes, unless `POSIXLY_CORRECT` is set, to any value, even
/// empty; then the first non-option ends the options and the rest are arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Permute,
    RequireOrder,
}

impl Order {
    /// What glibc's getopt_long would do in this process's environment.
    pub fn from_env() -> Order {
        if std::env::var_os("POSIXLY_CORRECT").is_some() {
            Order::RequireOrder
        } else {
            Order::Permute
        }
    }
}

/// One parsed command-line element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An option, by its long name, and its argument.
    Opt {
        name: &'static str,
        value: Option<String>,
    },
    /// A non-option argument.
    Positional(String),
}

/// A usage error, worded as glibc's getopt prints it (after `argv[0]: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetoptError {
    InvalidShort(char),
    MissingShortArgument(char),
    Unrecognized(String),
    Ambiguous {
        given: String,
        candidates: Vec<&'static str>,
    },
    MissingLongArgument(&'static str),
    UnexpectedLongArgument(&'static str),
}

impl fmt::Display for GetoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidShort(c) => write!(f, "invalid option -- '{c}'"),
            Self::MissingShortArgument(c) => write!(f, "option requires an argument -- '{c}'"),
            Self::Unrecognized(arg) => write!(f, "unrecognized option '{arg}'"),
            Self::Ambiguous { given, candidates } => {
                write!(f, "option '{given}' is ambiguous; possibilities:")?;
                for c in candidates {
                    write!(f, " '--{c}'")?;
                }
                Ok(())
            }
            Self::MissingLongArgument(name) => write!(f, "option '--{name}' requires an argument"),
            Self::UnexpectedLongArgument(name) => {
                write!(f, "option '--{name}' doesn't allow an argument")
            }
        }
    }
}

impl std::error::Error for GetoptError {}

/// Reads `args` (without argv[0]) the way `getopt_long` does, in `order`.
///
/// # Errors
/// The first usage error, as glibc reports it.
pub fn normalize(
    args: &[String],
    specs: &[OptSpec],
    order: Order,
) -> Result<Vec<Arg>, GetoptError> {
    let (parsed, error) = normalize_until_error(args, specs, order);
    error.map_or(Ok(parsed), Err)
}

/// Like [`normalize`], but also returns the options read before the first error: getopt
/// reports an error only when it reaches it, so `-V -x` prints the version and exits 0.
pub fn normalize_until_error(
    args: &[String],
    specs: &[OptSpec],
    order: Order,
) -> (Vec<Arg>, Option<GetoptError>) {
    let mut out = Vec::with_capacity(args.len());
    let error = read_args(args, specs, order, &mut out).err();
    (out, error)
}

fn read_args(
    args: &[String],
    specs: &[OptSpec],
    order: Order,
    out: &mut Vec<Arg>,
) -> Result<(), GetoptError> {
    let mut positionals = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            positionals.extend(args[i..].iter().cloned().map(Arg::Positional));
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            let spec = &specs[find_long(name, arg, specs)?];
            let value = match (spec.has_arg, inline) {
                (HasArg::No, Some(_)) => {
                    return Err(GetoptError::UnexpectedLongArgument(spec.long));
                }
                // Only a required argument may be the next word.
                (HasArg::Required, None) => {
                    let next = args.get(i).cloned();
                    i += 1;
                    Some(next.ok_or(GetoptError::MissingLongArgument(spec.long))?)
                }
                (_, inline) => inline,
            };
            out.push(spec.with(value));
        } else if arg.len() > 1 && arg.starts_with('-') {
            let cluster: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < cluster.len() {
                let c = cluster[j];
                j += 1;
                let spec = specs
                    .iter()
                    .find(|s| s.short == Some(c))
                    .ok_or(GetoptError::InvalidShort(c))?;
                if spec.has_arg == HasArg::No
                    || (spec.has_arg == HasArg::Optional && j == cluster.len())
                {
                    out.push(spec.with(None));
                    continue;
                }
                let value = if j < cluster.len() {
                    cluster[j..].iter().collect()
                } else if let Some(v) = args.get(i) {
                    i += 1;
                    v.clone()
                } else {
                    return Err(GetoptError::MissingShortArgument(c));
                };
                out.push(spec.with(Some(value)));
                break;
            }
        } else if order == Order::RequireOrder {
            positionals.extend(args[i - 1..].iter().cloned().map(Arg::Positional));
            break;
        } else {
            positionals.push(Arg::Positional(arg.clone()));
        }
    }
    out.extend(positionals);
    Ok(())
}

/// Finds a long option by exact name, else by unique prefix (glibc: prefixes of several options
/// that all have the same flags still count as ambiguous when they differ in index).
fn find_long(name: &str, whole: &str, specs: &[OptSpec]) -> Result<usize, GetoptError> {
    if let Some(i) = specs.iter().position(|s| s.long == name) {
        return Ok(i);
    }
    let prefix_of = |i: &usize| !name.is_empty() && specs[*i].long.starts_with(name);
    let matches: Vec<usize> = (0..specs.len()).filter(prefix_of).collect();
    match matches.as_slice() {
        [] => Err(GetoptError::Unrecognized(whole.to_owned())),
        [one] => Ok(*one),
        many => Err(GetoptError::Ambiguous {
            given: format!("--{name}"),
            candidates: many.iter().map(|&i| specs[i].long).collect(),
        }),
    }
}

/// A command line read by option name, for an applet that acts on the values once every
/// option is read (pr-client) rather than in command-line order (the daemon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options(pub Vec<Arg>);

impl Options {
    fn opts<'s>(&'s self, name: &str) -> impl Iterator<Item = Option<&'s str>> {
        self.0.iter().filter_map(move |a| match a {
            Arg::Opt { name: n, value } if *n == name => Some(value.as_deref()),
            _ => None,
        })
    }
    /// How many times `name` was given (a switch repeated: `-vv`), at most 255.
    pub fn count(&self, name: &str) -> u8 {
        u8::try_from(self.opts(name).count()).unwrap_or(u8::MAX)
    }
    pub fn given(&self, name: &str) -> bool {
        self.opts(name).next().is_some()
    }
    /// The last value given to `name` (the last one wins, as in C).
    pub fn last(&self, name: &str) -> Option<&str> {
        self.opts(name).last().flatten()
    }
    /// Every value given to `name`, in order.
    pub fn values<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s str> {
        self.opts(name).flatten()
    }
    /// The non-option arguments, in order.
    pub fn positionals(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|a| match a {
            Arg::Positional(p) => Some(p.as_str()),
            Arg::Opt { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `normalize` read, as one canonical argv (`--long value`, positionals after `--`;
    /// an optional argument stays `--long=value`, the only spelling that reads back the same).
    fn canonical_argv(parsed: &[Arg], specs: &[OptSpec]) -> Vec<String> {
        let mut argv = Vec::with_capacity(parsed.len() * 2 + 1);
        let mut tail = Vec::new();
        for arg in parsed {
            match arg {
                Arg::Opt { name, value } if has_arg(specs, name) == HasArg::Optional => {
                    argv.push(match value {
                        Some(v) => format!("--{name}={v}"),
                        None => format!("--{name}"),
                    });
                }
                Arg::Opt { name, value } => {
                    argv.push(format!("--{name}"));
                    if let Some(v) = value {
                        argv.push(v.clone());
                    }
                }
                Arg::Positional(p) => tail.push(p.clone()),
            }
        }
        if !tail.is_empty() {
            argv.push("--".to_owned());
            argv.extend(tail);
        }
        argv
    }

    fn has_arg(specs: &[OptSpec], name: &str) -> HasArg {
        specs
            .iter()
            .find(|s| s.long == name)
            .map_or(HasArg::No, |s| s.has_arg)
    }

    const SPECS: &[OptSpec] = &[
        OptSpec::new('h', "help", HasArg::No),
        OptSpec::new('V', "version", HasArg::No),
        OptSpec::new('k', "socket", HasArg::Required),
        OptSpec::new('f', "pidfile", HasArg::Required),
        OptSpec::new('d', "daemon", HasArg::No),
        OptSpec::new('T', "trace", HasArg::Required),
        OptSpec::new('v', "verbose", HasArg::No),
        OptSpec::new('q', "quiet", HasArg::No),
        OptSpec::new('a', "audit", HasArg::Optional),
    ];

    fn canon_in(order: Order, args: &[&str]) -> Result<Vec<String>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        normalize(&args, SPECS, order)
            .map(|p| canonical_argv(&p, SPECS))
            .map_err(|e| e.to_string())
    }

    fn canon(args: &[&str]) -> Result<Vec<String>, String> {
        canon_in(Order::Permute, args)
    }

    /// A command line as its words: split at each space, so a trailing space is an empty
    /// last word.
    fn words(line: &str) -> Vec<&str> {
        line.split(' ').collect()
    }

    /// Each command line of `cases`, read in `order`, gives its canonical argv (both as
    /// [`words`]); a failure names the line.
    fn assert_canon(order: Order, cases: &[(&str, &str)]) {
        for (line, want) in cases {
            let got = canon_in(order, &words(line)).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(got, words(want), "{line}");
        }
    }

    #[test]
    fn an_optional_argument_only_comes_inline() {
        assert_canon(
            Order::Permute,
            &[
                ("--audit", "--audit"),
                ("--audit=all", "--audit=all"),
                ("--aud=journal,all", "--audit=journal,all"),
                // The next word is not its argument, as with getopt's "::".
                ("--audit all", "--audit -- all"),
                ("-a", "--audit"),
                ("-aall", "--audit=all"),
                ("-qa x", "--quiet --audit -- x"),
            ],
        );
        // The canonical form reads back the same.
        for line in ["--audit=x,y -v", "-a --audit"] {
            let first = canon(&words(line)).unwrap();
            let refs: Vec<&str> = first.iter().map(String::as_str).collect();
            assert_eq!(canon(&refs).unwrap(), first, "{line}");
        }
    }

    #[test]
    fn every_spelling_of_an_argument() {
        for line in [
            "-k /s",
            "-k/s",
            "--socket /s",
            "--socket=/s",
            "--sock=/s",
            "--s /s",
        ] {
            assert_eq!(canon(&words(line)).unwrap(), ["--socket", "/s"], "{line}");
        }
    }

    #[test]
    fn clusters_permutation_and_double_dash() {
        assert_canon(
            Order::Permute,
            &[
                ("-qv", "--quiet --verbose"),
                ("-qk /s", "--quiet --socket /s"),
                ("-qk/s -v", "--quiet --socket /s --verbose"),
                ("file -d", "--daemon -- file"),
                ("-- -x", "-- -x"),
                ("- -d", "--daemon -- -"),
                ("-k -d", "--socket -d"),
                // An empty argument.
                ("--socket=", "--socket "),
            ],
        );
    }

    #[test]
    fn posixly_correct_stops_at_the_first_non_option() {
        assert_canon(
            Order::RequireOrder,
            &[
                ("-d file -x --foo", "--daemon -- file -x --foo"),
                ("- -d", "-- - -d"),
                ("-k x -- -d", "--socket x -- -d"),
            ],
        );
        let error = canon_in(Order::RequireOrder, &["-x", "file"]).unwrap_err();
        assert_eq!(error, "invalid option -- 'x'");
    }

    #[test]
    fn options_by_name_count_and_keep_the_last_value() {
        let line = "-vqv file -k/a --sock=/b --audit -aall x";
        let args: Vec<String> = words(line).into_iter().map(String::from).collect();
        let o = Options(normalize(&args, SPECS, Order::Permute).unwrap());
        assert_eq!(
            (o.count("verbose"), o.count("quiet"), o.count("daemon")),
            (2, 1, 0)
        );
        assert!(o.given("audit") && !o.given("pidfile"));
        assert_eq!(o.last("socket"), Some("/b"));
        assert_eq!(o.values("socket").collect::<Vec<_>>(), ["/a", "/b"]);
        // An optional argument: the last occurrence decides, given or not.
        assert_eq!(o.last("audit"), Some("all"));
        assert_eq!(o.values("audit").collect::<Vec<_>>(), ["all"]);
        assert_eq!(o.last("verbose"), None);
        assert_eq!(o.positionals().collect::<Vec<_>>(), ["file", "x"]);
    }

    #[test]
    fn glibc_error_messages() {
        let cases = [
            ("-x", "invalid option -- 'x'"),
            ("-k", "option requires an argument -- 'k'"),
            ("-dvqk", "option requires an argument -- 'k'"),
            ("--foo", "unrecognized option '--foo'"),
            ("--foo=1", "unrecognized option '--foo=1'"),
            (
                "--v",
                "option '--v' is ambiguous; possibilities: '--version' '--verbose'",
            ),
            ("--sock", "option '--socket' requires an argument"),
            ("--verb=3", "option '--verbose' doesn't allow an argument"),
        ];
        for (line, message) in cases {
            assert_eq!(canon(&words(line)).unwrap_err(), message, "{line}");
        }
    }
}
