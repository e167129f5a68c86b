// SPDX-License-Identifier: GPL-2.0

//! Asynchronous events (NVM Express Base Specification 2.0, section 5.2): decoding the
//! completion of an Asynchronous Event Request and deciding what the host does about it.

/// Log page identifiers the driver reads.
pub mod log {
    /// Error Information.
    pub const ERROR: u8 = 0x01;
    /// SMART / Health Information.
    pub const SMART: u8 = 0x02;
    /// Firmware Slot Information.
    pub const FW_SLOT: u8 = 0x03;
    /// Changed Namespace List.
    pub const CHANGED_NS: u8 = 0x04;
}

/// Asynchronous Event Configuration (Set Features 0Bh) bits for the notices the driver
/// handles: namespace attribute changes (bit 8) and firmware activation (bit 9).
pub const AEN_CFG_NOTICES: u32 = (1 << 8) | (1 << 9);

/// The kind of an asynchronous event (completion DW0 bits 2:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// An error status (type 0).
    Error,
    /// SMART / health status (type 1).
    Smart,
    /// A notice (type 2).
    Notice,
    /// Immediate (type 3), one-shot (type 4), I/O command set specific (6) or vendor
    /// specific (7) events, and reserved types.
    Other(u8),
}

/// What the driver does about an event, besides reading its log page to clear it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// Rescan the namespaces: some were attached, detached or resized.
    RescanNamespaces,
    /// Only log it.
    Log,
}

/// One asynchronous event, decoded from the completion's DW0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncEvent {
    /// The event type.
    pub kind: EventType,
    /// Asynchronous event information (DW0 bits 15:8).
    pub info: u8,
    /// The log page that describes the event and clears it when read (bits 23:16).
    pub log_page: u8,
}

/// Notice information: namespace attribute changed.
const NOTICE_NS_ATTR_CHANGED: u8 = 0x00;

impl AsyncEvent {
    /// Decodes the DW0 of an Asynchronous Event Request completion.
    pub fn from_dw0(dw0: u32) -> Self {
        let kind = match dw0 & 0x7 {
            0 => EventType::Error,
            1 => EventType::Smart,
            2 => EventType::Notice,
            t => EventType::Other(t as u8),
        };
        Self {
            kind,
            info: (dw0 >> 8) as u8,
            log_page: (dw0 >> 16) as u8,
        }
    }

    /// What the driver does about the event.
    pub fn action(&self) -> EventAction {
        match (self.kind, self.info) {
            (EventType::Notice, NOTICE_NS_ATTR_CHANGED) => EventAction::RescanNamespaces,
            _ => EventAction::Log,
        }
    }

    /// Bytes of the event's log page to read to clear it: the controller reports the event
    /// again only after the host read its page. Pages the driver does not know are read
    /// for their first 64 bytes, enough to clear the event.
    pub fn log_bytes(&self) -> u32 {
        match self.log_page {
            log::ERROR => 64,
            log::SMART | log::FW_SLOT => 512,
            log::CHANGED_NS => 4096,
            _ => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_change_notice_rescans() {
        // Notice, namespace attribute changed, Changed Namespace List.
        let e = AsyncEvent::from_dw0(0x0004_0002);
        assert_eq!(e.kind, EventType::Notice);
        assert_eq!(e.info, 0);
        assert_eq!(e.log_page, log::CHANGED_NS);
        assert_eq!(e.action(), EventAction::RescanNamespaces);
        assert_eq!(e.log_bytes(), 4096);
    }

    #[test]
    fn other_events_are_logged() {
        // SMART, temperature threshold, SMART log.
        let smart = AsyncEvent::from_dw0(0x0002_0101);
        assert_eq!(smart.kind, EventType::Smart);
        assert_eq!(smart.action(), EventAction::Log);
        assert_eq!(smart.log_bytes(), 512);
        // Firmware activation starting is a notice, but not a namespace change.
        let fw = AsyncEvent::from_dw0(0x0003_0102);
        assert_eq!(fw.kind, EventType::Notice);
        assert_eq!(fw.action(), EventAction::Log);
        let vendor = AsyncEvent::from_dw0(0x00c0_0007);
        assert_eq!(vendor.kind, EventType::Other(7));
        assert_eq!(vendor.log_bytes(), 64);
    }
}
