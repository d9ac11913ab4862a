//! The sinks: the journal's datagram.

use super::*;

#[test]
fn a_missing_journal_drops_and_counts() {
    let config = Config::parse(Some("journal=/nonexistent/pr-audit.sock")).unwrap();
    let audit = Audit::new(config, "t").unwrap();
    let peer = Peer::default();
    let p = pending(pr::pr_out_cdb(pr::OutSa::Register, 0, 0, 24), &[]);
    let record = record(&peer, &p);
    assert!(!audit.emit(&record));
    assert!(!audit.emit(&record));
    assert_eq!((audit.written(), audit.dropped()), (0, 2));
}
