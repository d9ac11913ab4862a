//! The reservation key a map is configured with, as libmultipath selects it
//! (`propsel.c :: select_reservation_key`, `prkey.c`): `reservation_key` from the map's
//! `multipaths` entry, else `overrides`, else `defaults`; the value is a hex key with an
//! optional `:aptpl`, or `file`, which means the WWID's line in `/etc/multipath/prkeys`.

/// multipath.conf.
pub const CONFIG_FILE: &str = "/etc/multipath.conf";
/// Directory of extra configuration files (`config_dir` default), read after the main file.
pub const CONFIG_DIR: &str = "/etc/multipath/conf.d";
/// The prkeys file multipathd maintains (`DEFAULT_PRKEYS_FILE`).
pub const PRKEYS_FILE: &str = "/etc/multipath/prkeys";

/// A key with its APTPL flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Key {
    pub key: u64,
    pub aptpl: bool,
}

/// Where a map's key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySource {
    /// No `reservation_key`: every PR OUT but an unregister is refused (SYNTAX ERROR).
    #[default]
    None,
    /// `reservation_key file`: the prkeys file, which registering updates through multipathd.
    File,
    /// A key written in the configuration.
    Value(Key),
}

/// What the configuration says about one map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapConfig {
    pub key_source: KeySource,
    /// `all_tg_pt yes`: register through one path per SCSI host only.
    pub all_tg_pt: bool,
}

/// libmultipath's `parse_prkey_flags`: hex digits (1 to 16) after an optional `0x`/`0X`,
/// then optionally `:aptpl`; any other suffix after `:` is dropped.
pub fn parse_key(s: &str) -> Option<Key> {
    let (digits, flags) = match s.split_once(':') {
        Some((d, f)) => (d, f),
        None => (s, ""),
    };
    let digits = digits.strip_prefix('0').unwrap_or(digits);
    let digits = digits
        .strip_prefix('x')
        .or_else(|| digits.strip_prefix('X'))
        .unwrap_or(digits);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Key {
        key: u64::from_str_radix(digits, 16).ok()?,
        aptpl: flags == "aptpl",
    })
}

/// The value multipathd's `setprkey` takes: lowercase hex without `0x`, `:aptpl` if set.
pub fn format_key(key: Key) -> String {
    if key.aptpl {
        format!("{:x}:aptpl", key.key)
    } else {
        format!("{:x}", key.key)
    }
}

/// multipathd's `getprkey` reply: `0x…[:aptpl]` or `none` (key 0). `None` for anything else
/// (an error reply).
pub fn parse_getprkey_reply(reply: &str) -> Option<Key> {
    let reply = reply.trim();
    if reply == "none" {
        return Some(Key::default());
    }
    if !reply.starts_with("0x") && !reply.starts_with("0X") {
        return None;
    }
    parse_key(reply)
}

/// The WWID's key in a prkeys file (`prkey.c :: do_prkey`): lines `0x%016x <wwid>`, written
/// `0X` when APTPL is set. The first line naming the WWID decides; a line commented out with
/// `#` (how multipathd removes a key) means no key.
pub fn prkey_for(text: &str, wwid: &str) -> Option<Key> {
    const KEY_WIDTH: usize = 18;
    for line in text.lines() {
        let Some(rest) = line.get(KEY_WIDTH..) else {
            continue;
        };
        if rest.strip_prefix(' ') != Some(wwid) {
            continue;
        }
        let keystr = &line[..KEY_WIDTH];
        if keystr.starts_with('#') {
            return None;
        }
        let mut key = parse_key(keystr)?;
        key.aptpl = keystr.contains('X');
        return Some(key);
    }
    None
}

/// Splits a configuration line into words: `#` and `!` start comments, double quotes make one
/// word of what they enclose (libmultipath's `alloc_strvec`).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' || c == '!' {
            break;
        } else if c == '"' {
            chars.next();
            let w: String = chars.by_ref().take_while(|&c| c != '"').collect();
            out.push(w);
        } else if c == '{' || c == '}' {
            chars.next();
            out.push(c.to_string());
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '{' || c == '}' || c == '"' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(w);
        }
    }
    out
}

fn parse_key_source(value: &str) -> Option<KeySource> {
    if value == "file" {
        return Some(KeySource::File);
    }
    parse_key(value).map(KeySource::Value)
}

fn yes(value: &str) -> bool {
    value == "yes" || value == "1"
}

/// What the configuration files (in reading order) say about the map with this WWID. Later
/// files override earlier ones, as `config_dir` files override multipath.conf. Invalid key
/// values are ignored, as libmultipath's parser does. `all_tg_pt` is read from `overrides`
/// and `defaults`; a `devices` entry's setting is not looked at.
pub fn map_config<'a>(files: impl IntoIterator<Item = &'a str>, wwid: &str) -> MapConfig {
    let mut defaults = (None, None);
    let mut overrides = (None, None);
    let mut entry_key = None;
    for text in files {
        let mut stack: Vec<String> = Vec::new();
        let mut entry_wwid: Option<String> = None;
        let mut entry_value: Option<KeySource> = None;
        for line in text.lines() {
            let w = words(line);
            let Some(first) = w.first() else { continue };
            if first == "}" {
                if stack.pop().as_deref() == Some("multipath") {
                    if entry_wwid.as_deref() == Some(wwid) && entry_value.is_some() {
                        entry_key = entry_value;
                    }
                    entry_wwid = None;
                    entry_value = None;
                }
                continue;
            }
            if w.last().map(String::as_str) == Some("{") {
                stack.push(first.clone());
                continue;
            }
            let value = w.get(1).map(String::as_str).unwrap_or("");
            let section = stack.iter().map(String::as_str).collect::<Vec<_>>();
            let slot = match section.as_slice() {
                ["defaults"] => &mut defaults,
                ["overrides"] => &mut overrides,
                ["multipaths", "multipath"] => {
                    match first.as_str() {
                        "wwid" => entry_wwid = Some(value.to_owned()),
                        "reservation_key" => entry_value = parse_key_source(value),
                        _ => {}
                    }
                    continue;
                }
                _ => continue,
            };
            match first.as_str() {
                "reservation_key" => {
                    if let Some(src) = parse_key_source(value) {
                        slot.0 = Some(src);
                    }
                }
                "all_tg_pt" => slot.1 = Some(yes(value)),
                _ => {}
            }
        }
    }
    MapConfig {
        key_source: entry_key
            .or(overrides.0)
            .or(defaults.0)
            .unwrap_or(KeySource::None),
        all_tg_pt: overrides.1.or(defaults.1).unwrap_or(false),
    }
}

/// Reads multipath.conf and the `*.conf` files of its directory, in name order.
pub fn read_config_files() -> Vec<String> {
    let mut texts = Vec::new();
    if let Ok(t) = std::fs::read_to_string(CONFIG_FILE) {
        texts.push(t);
    }
    if let Ok(dir) = std::fs::read_dir(CONFIG_DIR) {
        let mut names: Vec<_> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        names.sort();
        texts.extend(names.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    texts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: u64, aptpl: bool) -> Key {
        Key { key, aptpl }
    }

    #[test]
    fn key_values_as_libmultipath_parses_them() {
        let cases = [
            ("0x123abc", Some(key(0x123abc, false))),
            ("0X1:aptpl", Some(key(1, true))),
            ("abc", Some(key(0xabc, false))),
            ("0x1:other", Some(key(1, false))),
            ("0x", None),
            ("0x12345678123456789", None),
            ("0xfffffffffffffff1", Some(key(u64::MAX - 14, false))),
            ("0xzz", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_key(text), want, "{text}");
        }
        assert_eq!(format_key(key(0xab, true)), "ab:aptpl");
        assert_eq!(format_key(key(0x1, false)), "1");
    }

    #[test]
    fn getprkey_replies() {
        assert_eq!(parse_getprkey_reply("0x5\n"), Some(key(5, false)));
        assert_eq!(parse_getprkey_reply("0x5:aptpl\n"), Some(key(5, true)));
        assert_eq!(parse_getprkey_reply("none\n"), Some(Key::default()));
        assert_eq!(parse_getprkey_reply("fail\ndevice not found\n"), None);
    }

    #[test]
    fn prkeys_file_lines() {
        let text = "# Multipath persistent reservation keys, Version : 1.0\n\
                    # prkey wwid\n\
                    0x0000000000000abc 3600140511111\n\
                    0X00000000000000ff 3600140522222\n\
                    #x0000000000000001 3600140533333\n\
                    0x0000000000000002 36001405333333\n";
        assert_eq!(prkey_for(text, "3600140511111"), Some(key(0xabc, false)));
        assert_eq!(prkey_for(text, "3600140522222"), Some(key(0xff, true)));
        assert_eq!(prkey_for(text, "3600140533333"), None);
        assert_eq!(prkey_for(text, "36001405333333"), Some(key(2, false)));
        assert_eq!(prkey_for(text, "360014054"), None);
    }

    const CONF: &str = r#"
defaults {
    user_friendly_names yes
    reservation_key 0x1111   # default key
    all_tg_pt no
}
multipaths {
    multipath {
        wwid "3600140522222"
        alias db
        reservation_key "0x2222:aptpl"
    }
    multipath {
        wwid 3600140533333
        reservation_key file
    }
}
devices {
    device {
        vendor "LIO-ORG"
        reservation_key 0x9999
    }
}
"#;

    #[test]
    fn config_precedence() {
        let c = map_config([CONF], "3600140511111");
        assert_eq!(c.key_source, KeySource::Value(key(0x1111, false)));
        assert!(!c.all_tg_pt);
        let c = map_config([CONF], "3600140522222");
        assert_eq!(c.key_source, KeySource::Value(key(0x2222, true)));
        assert_eq!(
            map_config([CONF], "3600140533333").key_source,
            KeySource::File
        );
        let over = "overrides {\n reservation_key file\n all_tg_pt yes\n}\n";
        let c = map_config([CONF, over], "3600140511111");
        assert_eq!(c.key_source, KeySource::File);
        assert!(c.all_tg_pt);
        // The map's own entry beats overrides.
        let c = map_config([CONF, over], "3600140522222");
        assert_eq!(c.key_source, KeySource::Value(key(0x2222, true)));
        assert_eq!(map_config([""], "x"), MapConfig::default());
        assert_eq!(
            map_config(["defaults {\nreservation_key bogus\n}"], "x").key_source,
            KeySource::None
        );
    }

    #[test]
    fn config_words() {
        assert_eq!(words(r#"  alias "my map" ! comment"#), ["alias", "my map"]);
        assert_eq!(words("defaults{"), ["defaults", "{"]);
        assert!(words("# only a comment").is_empty());
    }
}
