//! SCSI definitions shared by the daemon and the client: status bytes, sense data, CDBs and
//! the persistent-reservation layouts of SPC-4.

pub mod cdb;
pub mod pr;
pub mod sense;

/// SCSI status byte values (SAM-5 table 33), with the names sg3_utils prints.
pub mod status {
    pub const GOOD: u8 = 0x00;
    pub const CHECK_CONDITION: u8 = 0x02;
    pub const CONDITION_MET: u8 = 0x04;
    pub const BUSY: u8 = 0x08;
    pub const RESERVATION_CONFLICT: u8 = 0x18;
    pub const TASK_SET_FULL: u8 = 0x28;
    pub const ACA_ACTIVE: u8 = 0x30;
    pub const TASK_ABORTED: u8 = 0x40;

    /// The status name as SAM and sg3_utils spell it.
    pub fn name(status: u8) -> &'static str {
        match status {
            GOOD => "GOOD",
            CHECK_CONDITION => "CHECK CONDITION",
            CONDITION_MET => "CONDITION MET",
            BUSY => "BUSY",
            RESERVATION_CONFLICT => "RESERVATION CONFLICT",
            TASK_SET_FULL => "TASK SET FULL",
            ACA_ACTIVE => "ACA ACTIVE",
            TASK_ABORTED => "TASK ABORTED",
            _ => "UNKNOWN STATUS",
        }
    }
}
