//! The one command `pr-client` sends: PR IN with its allocation length, or PR OUT with its
//! type and parameter list; encoded with [`crate::scsi::pr`].

use crate::scsi::pr::{self, InSa, OutSa, ProutParams, Scope};

/// The command to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    In {
        sa: InSa,
        allocation_length: u16,
    },
    Out {
        sa: OutSa,
        prout_type: u8,
        params: ProutParams,
    },
}

impl Action {
    /// The CDB (16 bytes, as the helper protocol carries it) and the PR OUT parameter list.
    pub fn encode(&self) -> ([u8; 16], Vec<u8>) {
        match self {
            Action::In {
                sa,
                allocation_length,
            } => (pr::pr_in_cdb(*sa, *allocation_length), Vec::new()),
            Action::Out {
                sa,
                prout_type,
                params,
            } => {
                let list = params.encode(*sa);
                let len = u32::try_from(list.len()).unwrap_or(u32::MAX);
                let scope = Scope::LogicalUnit as u8;
                (pr::pr_out_cdb(*sa, scope, *prout_type, len), list)
            }
        }
    }
    /// "PR in (Read keys)" / "PR out (Register)", sg_persist's wording.
    pub fn label(&self) -> String {
        match self {
            Action::In { sa, .. } => format!("PR in ({})", sa.name()),
            Action::Out { sa, .. } => format!("PR out ({})", sa.name()),
        }
    }
}
