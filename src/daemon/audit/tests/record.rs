//! The record's fields, its line and its journal datagram.

use super::*;
use crate::daemon::audit::peer::{PeerRead, Vm, VmSource};

#[test]
fn preempt_record_fields_and_line() {
    let peer = Peer {
        pid: 77,
        uid: 64055,
        gid: 994,
        comm: Some("qemu-system-x86".into()),
        cgroup: Some("/machine.slice/machine-qemu\\x2d2\\x2dnode2.scope".into()),
        vm: Some(Vm {
            name: "node2".into(),
            source: VmSource::Cgroup,
        }),
        read: PeerRead::Pidfd,
    };
    let mut params = [0u8; 24];
    params[..8].copy_from_slice(&0x2222u64.to_be_bytes());
    params[8..16].copy_from_slice(&0x1111u64.to_be_bytes());
    params[20] = 1;
    let p = pending(pr::pr_out_cdb(pr::OutSa::Preempt, 0, 1, 24), &params);
    let info = DeviceInfo {
        name: Some("sdb".into()),
        wwid: Some("naa.6001405abcdef".into()),
    };
    let record = Record {
        device: Some(&info),
        duration: Duration::from_micros(1234),
        ..record(&peer, &p)
    };
    let fields = journal(&record);
    assert_eq!(fields["PR_ACTION"], "PREEMPT");
    assert_eq!(fields["PR_TYPE"], "wr_ex");
    assert_eq!(fields["PR_SCOPE"], "0");
    assert_eq!(fields["PR_KEY"], "0x0000000000002222");
    assert_eq!(fields["PR_SA_KEY"], "0x0000000000001111");
    assert_eq!(fields["PR_APTPL"], "1");
    assert_eq!(fields["PR_DEVICE"], "8:16");
    assert_eq!(fields["PR_DEVICE_WWID"], "naa.6001405abcdef");
    assert_eq!(fields["PR_VM"], "node2");
    assert_eq!(fields["PR_VM_SOURCE"], "cgroup");
    assert_eq!(fields["PR_PEER_READ"], "pidfd");
    assert_eq!(fields["PR_PEER_PID"], "77");
    assert_eq!(fields["PR_STATUS"], "GOOD");
    assert_eq!(fields["PR_DURATION_US"], "1234");
    assert_eq!(fields["PRIORITY"], "5");
    let line = "PREEMPT type=wr_ex scope=0 key=0x0000000000002222 sa_key=0x0000000000001111 \
                aptpl=1 device=8:16 device_name=sdb device_wwid=naa.6001405abcdef peer_pid=77 \
                peer_uid=64055 peer_gid=994 peer_comm=qemu-system-x86 peer_read=pidfd vm=node2 vm_source=cgroup \
                peer_cgroup=/machine.slice/machine-qemu\\x2d2\\x2dnode2.scope status=GOOD \
                duration_us=1234";
    assert_eq!(fields["MESSAGE"], format!("PR OUT {line}"));
    let stderr = String::from_utf8(emitted(&record, false)).unwrap();
    assert_eq!(stderr, format!("qemu-pr-helper: audit: {line}\n"));
}

#[test]
fn conflict_with_sense_in_words_and_journal_round_trip() {
    let peer = Peer {
        pid: 5,
        comm: Some("two\nlines".into()),
        ..Peer::default()
    };
    let p = pending(pr::pr_in_cdb(pr::InSa::ReadKeys, 24), &[]);
    let record = Record {
        status: status::CHECK_CONDITION,
        sense: Some(sense::SenseCode {
            key: 5,
            asc: 0x20,
            ascq: 0,
        }),
        paths: vec!["8:0".into(), "8:16".into()],
        ..record(&peer, &p)
    };
    let fields = journal(&record);
    assert_eq!(fields["PR_ACTION"], "READ_KEYS");
    assert_eq!(fields["PR_DIRECTION"], "IN");
    assert_eq!(fields["PR_STATUS"], "CHECK_CONDITION");
    let sense = &fields["PR_SENSE"];
    assert!(sense.starts_with("Illegal Request 05/20/00: "), "{sense}");
    assert_eq!(fields["PR_PATHS"], "8:0,8:16");
    // A value with a newline takes the binary form and reads back whole.
    assert_eq!(fields["PR_PEER_COMM"], "two\nlines");
    assert_eq!(fields["SYSLOG_IDENTIFIER"], "qemu-pr-helper");
    assert_eq!(fields["MESSAGE_ID"], MESSAGE_ID);
    assert!(fields["MESSAGE"].starts_with("PR IN READ_KEYS "));
    assert!(!fields.contains_key("PR_KEY"), "no keys for PR IN");
}

#[test]
fn a_name_from_the_command_line_is_a_claim_never_pr_vm() {
    // KubeVirt: QEMU in its virt-launcher pod's compute container, `-name guest=NS_NAME`.
    let pod = "/kubepods.slice/kubepods-burstable.slice/\
               kubepods-burstable-pod3cbb32a1_f11c_4065_99e6_62ce670bff12.slice/\
               cri-containerd-0123abcd.scope";
    let peer = Peer {
        pid: 9,
        cgroup: Some(pod.into()),
        vm: Some(Vm {
            name: "default_node2".into(),
            source: VmSource::Cmdline,
        }),
        read: PeerRead::Pid,
        ..Peer::default()
    };
    let p = pending(pr::pr_out_cdb(pr::OutSa::Register, 0, 0, 24), &[]);
    let record = record(&peer, &p);
    let fields = journal(&record);
    // `journalctl PR_VM=default_node2` does not find it; the pod's UID is the cgroup's.
    assert!(!fields.contains_key("PR_VM"), "{fields:?}");
    assert_eq!(fields["PR_VM_CLAIMED"], "default_node2");
    assert_eq!(fields["PR_POD_UID"], "3cbb32a1-f11c-4065-99e6-62ce670bff12");
    assert_eq!(fields["PR_VM_SOURCE"], "cmdline");
    assert_eq!(fields["PR_PEER_READ"], "pid");
    let line = String::from_utf8(emitted(&record, false)).unwrap();
    assert!(
        line.contains(" peer_read=pid vm_claimed=default_node2 vm_source=cmdline "),
        "{line}"
    );
    assert!(!line.contains(" vm="), "{line}");
}

#[test]
fn a_peer_gone_before_it_was_read_says_so() {
    let peer = Peer {
        pid: 9,
        ..Peer::default()
    };
    let p = pending(pr::pr_out_cdb(pr::OutSa::Register, 0, 0, 24), &[]);
    let fields = journal(&record(&peer, &p));
    assert_eq!(fields["PR_PEER_READ"], "gone");
    assert!(!fields.contains_key("PR_VM_SOURCE"), "{fields:?}");
}

#[test]
fn a_malformed_datagram_is_refused_with_where() {
    let mut good = Vec::new();
    crate::daemon::audit::journal::field(&mut good, "A", "one");
    crate::daemon::audit::journal::field(&mut good, "B", "two\nlines");
    let fields = parse_journal_fields(&good).unwrap();
    assert_eq!(fields[1], ("B".to_owned(), "two\nlines".to_owned()));
    let binary_at = "A=one\n".len();
    let length_of = |n: u64| [&b"A=one\nB\n"[..], &n.to_le_bytes()].concat();
    let cases: [(&str, Vec<u8>, usize); 6] = [
        ("no newline", b"A=one\nB=two".to_vec(), binary_at),
        ("no length", b"A=one\nB\n\x01\x00".to_vec(), binary_at),
        (
            "short value",
            [length_of(9), b"abc\n".to_vec()].concat(),
            binary_at,
        ),
        ("length past memory", length_of(u64::MAX), binary_at),
        (
            "no newline after",
            [length_of(3), b"abcX".to_vec()].concat(),
            binary_at,
        ),
        (
            "cut after the value",
            [length_of(3), b"abc".to_vec()].concat(),
            binary_at,
        ),
    ];
    for (what, bytes, at) in cases {
        let e = parse_journal_fields(&bytes).expect_err(what);
        assert_eq!(e.at, at, "{what}: {e}");
        assert!(e.to_string().contains("malformed journal datagram"), "{e}");
    }
}
