//! The dm-multipath target's table and status strings (`drivers/md/dm-mpath.c ::
//! multipath_status`), parsed by walking their counters: word counts vary with the path
//! selector and hardware handler, so nothing assumes a fixed width.
//!
//! ```text
//! table:  <#features> <features…> <#hwh words> [<hwh> <args…>] <#PGs> <initial PG>
//!           per PG:   <selector> <#selector args> <args…> <#paths> <#per-path args>
//!             per path: <maj:min> <per-path args…>
//! status: <#features> <features…> <#hwh words> [<hwh status…>] <#PGs> <next PG>
//!           per PG:   <D|A|E> <#selector status words> <…> <#paths> <#per-path info words>
//!             per path: <maj:min> <A|F> <fail count> <info…>
//! ```

/// Why a table or status string could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The string ended where a word was due.
    Truncated,
    /// A count or device number is not a number.
    BadNumber(String),
    /// A path state other than `A` or `F`.
    BadState(String),
    /// The status does not list the table's paths.
    Mismatch,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Truncated => f.write_str("it ends too early"),
            ParseError::BadNumber(w) => write!(f, "{w} is not a number"),
            ParseError::BadState(w) => write!(f, "{w} is not a path state (A or F)"),
            ParseError::Mismatch => f.write_str("the status does not list the table's paths"),
        }
    }
}

/// A path device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for DevNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One path as the table lists it: its number and its priority group (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablePath {
    pub dev: DevNum,
    pub group: usize,
}

/// One path as the status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusPath {
    pub dev: DevNum,
    pub group: usize,
    /// The kernel's state: `A` (active) is true, `F` (failed) false.
    pub active: bool,
    pub fail_count: u32,
}

/// The table's feature words (`queue_if_no_path`, `retain_attached_hw_handler`, …), hardware
/// handler and paths in table order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    pub features: Vec<String>,
    /// Hardware handler name and arguments; empty without one.
    pub hw_handler: Vec<String>,
    pub paths: Vec<TablePath>,
}

struct Words<'a> {
    iter: std::str::SplitAsciiWhitespace<'a>,
    left: usize,
}

impl<'a> Words<'a> {
    fn new(s: &'a str) -> Self {
        Words {
            iter: s.split_ascii_whitespace(),
            left: s.split_ascii_whitespace().count(),
        }
    }
    fn word(&mut self) -> Result<&'a str, ParseError> {
        let w = self.iter.next().ok_or(ParseError::Truncated)?;
        self.left -= 1;
        Ok(w)
    }
    fn count(&mut self) -> Result<usize, ParseError> {
        let w = self.word()?;
        w.parse::<usize>()
            .map_err(|_| ParseError::BadNumber(w.to_owned()))
    }
    /// `n` words, refusing counts larger than what is left before collecting anything.
    fn take(&mut self, n: usize) -> Result<Vec<&'a str>, ParseError> {
        if n > self.left {
            return Err(ParseError::Truncated);
        }
        (0..n).map(|_| self.word()).collect()
    }
    fn skip(&mut self, n: usize) -> Result<(), ParseError> {
        self.take(n).map(|_| ())
    }
    fn dev(&mut self) -> Result<DevNum, ParseError> {
        let w = self.word()?;
        parse_dev(w).ok_or_else(|| ParseError::BadNumber(w.to_owned()))
    }
}

/// `major:minor` as the kernel's `format_dev_t` writes it.
pub fn parse_dev(s: &str) -> Option<DevNum> {
    let (major, minor) = s.split_once(':')?;
    Some(DevNum {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

/// Parses a multipath table line's parameters.
///
/// # Errors
/// When the counters do not match the words.
pub fn parse_table(params: &str) -> Result<Table, ParseError> {
    let mut w = Words::new(params);
    let n = w.count()?;
    let features = w.take(n)?.into_iter().map(str::to_owned).collect();
    let n = w.count()?;
    let hw_handler = w.take(n)?.into_iter().map(str::to_owned).collect();
    let groups = w.count()?;
    let _initial_group = w.count()?;
    let mut paths = Vec::new();
    for group in 0..groups {
        let _selector = w.word()?;
        let n = w.count()?;
        w.skip(n)?;
        let npaths = w.count()?;
        let per_path_args = w.count()?;
        for _ in 0..npaths {
            let dev = w.dev()?;
            w.skip(per_path_args)?;
            paths.push(TablePath { dev, group });
        }
    }
    Ok(Table {
        features,
        hw_handler,
        paths,
    })
}

/// Parses a multipath status line's paths.
///
/// # Errors
/// When the counters do not match the words or a path state is unknown.
pub fn parse_status(params: &str) -> Result<Vec<StatusPath>, ParseError> {
    let mut w = Words::new(params);
    let n = w.count()?;
    w.skip(n)?;
    let n = w.count()?;
    w.skip(n)?;
    let groups = w.count()?;
    let _next_group = w.count()?;
    let mut paths = Vec::new();
    for group in 0..groups {
        let _group_state = w.word()?;
        let n = w.count()?;
        w.skip(n)?;
        let npaths = w.count()?;
        let info_args = w.count()?;
        for _ in 0..npaths {
            let dev = w.dev()?;
            let active = match w.word()? {
                "A" => true,
                "F" => false,
                other => return Err(ParseError::BadState(other.to_owned())),
            };
            let fc = w.word()?;
            let fail_count = fc
                .parse()
                .map_err(|_| ParseError::BadNumber(fc.to_owned()))?;
            w.skip(info_args)?;
            paths.push(StatusPath {
                dev,
                group,
                active,
                fail_count,
            });
        }
    }
    Ok(paths)
}

/// A path of the map: table order, with the kernel's state from the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapPath {
    pub dev: DevNum,
    pub group: usize,
    pub active: bool,
}

/// The map's paths in table order (priority groups in order, paths in order), each with its
/// state from the status, which lists the same paths in the same order.
///
/// # Errors
/// When either string is malformed or they list different paths.
pub fn paths(table: &str, status: &str) -> Result<Vec<MapPath>, ParseError> {
    let t = parse_table(table)?;
    let s = parse_status(status)?;
    if t.paths.len() != s.len() {
        return Err(ParseError::Mismatch);
    }
    t.paths
        .iter()
        .zip(&s)
        .map(|(tp, sp)| {
            if tp.dev != sp.dev {
                return Err(ParseError::Mismatch);
            }
            Ok(MapPath {
                dev: tp.dev,
                group: tp.group,
                active: sp.active,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(major: u32, minor: u32) -> DevNum {
        DevNum { major, minor }
    }

    // Two ALUA groups, service-time with two per-path args, queue_if_no_path.
    const TABLE_ALUA: &str = "1 queue_if_no_path 1 alua 2 1 service-time 0 2 2 8:16 1 1 8:48 1 1 \
                              service-time 0 2 2 8:32 1 1 8:64 1 1";
    const STATUS_ALUA: &str = "2 0 0 0 2 1 A 0 2 2 8:16 A 0 0 1 8:48 F 3 0 1 \
                               E 0 2 2 8:32 A 0 0 1 8:64 A 0 0 1";

    #[test]
    fn table_with_groups_features_and_handler() {
        let t = parse_table(TABLE_ALUA).unwrap();
        assert_eq!(t.features, ["queue_if_no_path"]);
        assert_eq!(t.hw_handler, ["alua"]);
        assert_eq!(
            t.paths,
            [
                TablePath {
                    dev: dev(8, 16),
                    group: 0
                },
                TablePath {
                    dev: dev(8, 48),
                    group: 0
                },
                TablePath {
                    dev: dev(8, 32),
                    group: 1
                },
                TablePath {
                    dev: dev(8, 64),
                    group: 1
                },
            ]
        );
    }

    #[test]
    fn table_with_handler_args_and_several_features() {
        let t = parse_table(
            "3 queue_if_no_path pg_init_retries 50 2 emc 1 1 1 round-robin 0 3 1 \
             8:16 1000 65:0 1000 253:7 1000",
        )
        .unwrap();
        assert_eq!(t.features, ["queue_if_no_path", "pg_init_retries", "50"]);
        assert_eq!(t.hw_handler, ["emc", "1"]);
        let devs: Vec<_> = t.paths.iter().map(|p| p.dev).collect();
        assert_eq!(devs, [dev(8, 16), dev(65, 0), dev(253, 7)]);
    }

    #[test]
    fn table_without_features_or_handler() {
        let t = parse_table("0 0 1 1 round-robin 0 2 1 8:16 1 8:32 1").unwrap();
        assert!(t.features.is_empty() && t.hw_handler.is_empty());
        assert_eq!(t.paths.len(), 2);
    }

    #[test]
    fn status_with_failed_paths() {
        let s = parse_status(STATUS_ALUA).unwrap();
        assert_eq!(s.len(), 4);
        assert!(s[0].active);
        assert_eq!(
            (s[1].dev, s[1].active, s[1].fail_count),
            (dev(8, 48), false, 3)
        );
        assert_eq!(s[2].group, 1);
        // round-robin has one info word per path, and an old 2-word feature block.
        let s = parse_status("2 1 0 0 1 1 A 0 2 0 8:16 F 1 8:32 A 0").unwrap();
        assert_eq!(s.len(), 2);
        let s = parse_status("2 0 0 0 1 1 A 0 2 1 8:16 F 1 0 8:32 A 0 0").unwrap();
        assert_eq!((s[0].active, s[1].active), (false, true));
    }

    #[test]
    fn status_with_handler_status() {
        let s = parse_status("2 0 0 1 0 1 1 A 0 1 2 8:16 A 0 0 1").unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn merged_paths_keep_table_order_and_state() {
        let p = paths(TABLE_ALUA, STATUS_ALUA).unwrap();
        let states: Vec<_> = p.iter().map(|p| (p.dev, p.group, p.active)).collect();
        assert_eq!(
            states,
            [
                (dev(8, 16), 0, true),
                (dev(8, 48), 0, false),
                (dev(8, 32), 1, true),
                (dev(8, 64), 1, true),
            ]
        );
        assert_eq!(
            paths(TABLE_ALUA, "2 0 0 0 1 1 A 0 1 0 8:16 A 0"),
            Err(ParseError::Mismatch)
        );
    }

    #[test]
    fn parse_errors_read_as_words() {
        let said = [
            ParseError::Truncated,
            ParseError::BadNumber("8:x".into()),
            ParseError::BadState("X".into()),
            ParseError::Mismatch,
        ]
        .map(|e| e.to_string());
        assert_eq!(said[1], "8:x is not a number");
        for line in said {
            assert!(
                !line.contains(['"', '(', '{']) || line.ends_with("(A or F)"),
                "{line}"
            );
        }
    }

    #[test]
    fn malformed_strings_are_errors() {
        assert_eq!(parse_table(""), Err(ParseError::Truncated));
        assert_eq!(parse_table("4000000000 x"), Err(ParseError::Truncated));
        assert!(matches!(
            parse_table("0 0 1 1 rr 0 1 0 816"),
            Err(ParseError::BadNumber(_))
        ));
        assert_eq!(
            parse_status("2 0 0 0 1 1 A 0 1 0 8:16 X 0"),
            Err(ParseError::BadState("X".into()))
        );
        assert_eq!(
            parse_table("0 0 99999999 1 rr 0 1 0 8:16"),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            DevNum {
                major: 8,
                minor: 16
            }
            .to_string(),
            "8:16"
        );
    }
}
