//! User-space extras: aya `Pod` impls and serde helpers.

use crate::{
    BindEvent, BlockKey, BlockStart, DiskStats, EventHeader, ExecEvent, ExitEvent, OomKillEvent,
    SockInfo, SockOwner, TcpCloseEvent, TracepointOffsets, WriteKey, WriteStat,
};

// SAFETY: all are `#[repr(C)]`, made only of integers and integer arrays (`Field<T>` is a
// transparent `u32`), with no padding (checked by the size assertions in `records` and
// `signals`), so every bit pattern is valid.
unsafe impl aya::Pod for EventHeader {}
unsafe impl aya::Pod for BindEvent {}
unsafe impl aya::Pod for ExecEvent {}
unsafe impl aya::Pod for ExitEvent {}
unsafe impl aya::Pod for OomKillEvent {}
unsafe impl aya::Pod for SockInfo {}
unsafe impl aya::Pod for TcpCloseEvent {}
unsafe impl aya::Pod for SockOwner {}
unsafe impl aya::Pod for WriteKey {}
unsafe impl aya::Pod for WriteStat {}
unsafe impl aya::Pod for BlockKey {}
unsafe impl aya::Pod for BlockStart {}
unsafe impl aya::Pod for DiskStats {}
unsafe impl aya::Pod for TracepointOffsets {}

/// Reads a record of type `T` from the front of a ring buffer item, if it is long enough.
pub fn read_record<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < core::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked above; `T: Pod` accepts any bit pattern; read_unaligned copes
    // with any alignment of the source.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Serde for byte arrays longer than serde's built-in 32: as a byte string.
pub(crate) mod byte_array {
    use serde::{Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> serde::de::Visitor<'_> for V<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_bytes<E: Error>(self, b: &[u8]) -> Result<[u8; N], E> {
                b.try_into().map_err(|_| E::invalid_length(b.len(), &self))
            }
        }
        d.deserialize_bytes(V::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    fn header(kind: Kind) -> EventHeader {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"curl");
        EventHeader {
            kind: kind as u32,
            flags: FLAG_TRUNCATED,
            ts_ns: 123_456_789,
            pid: 42,
            tgid: 41,
            comm,
        }
    }

    fn as_bytes<T: aya::Pod>(v: &T) -> &[u8] {
        // SAFETY: Pod, no padding.
        unsafe {
            core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>())
        }
    }

    fn round_trip<T>(v: T)
    where
        T: aya::Pod + PartialEq + core::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
    {
        let back: T = read_record(as_bytes(&v)).expect("long enough");
        assert_eq!(back, v);
        assert!(
            read_record::<T>(&as_bytes(&v)[1..]).is_none(),
            "short input must be refused"
        );
        let enc = postcard::to_stdvec(&v).expect("encode");
        assert_eq!(postcard::from_bytes::<T>(&enc).expect("decode"), v);
    }

    #[test]
    fn every_record_round_trips() {
        let mut addr = [0u8; SOCKADDR_LEN];
        addr[..8].copy_from_slice(&[2, 0, 0x1f, 0x90, 127, 0, 0, 1]);
        round_trip(BindEvent {
            header: header(Kind::Bind),
            ret: -98,
            fd: 3,
            addrlen: 16,
            _pad: 0,
            addr,
        });
        let mut filename = [0u8; FILENAME_LEN];
        filename[..9].copy_from_slice(b"/bin/true");
        round_trip(ExecEvent {
            header: header(Kind::Exec),
            ppid: 7,
            filename_len: 9,
            filename,
        });
        round_trip(ExitEvent {
            header: header(Kind::Exit),
            ppid: 7,
            exit_code: 3,
            signal: 11,
            _pad: 0,
        });
        let mut victim_comm = [0u8; COMM_LEN];
        victim_comm[..7].copy_from_slice(b"python3");
        round_trip(OomKillEvent {
            header: header(Kind::OomKill),
            victim_pid: 41,
            uid: 1000,
            total_vm_kib: 43292,
            anon_rss_kib: 32512,
            file_rss_kib: 6596,
            shmem_rss_kib: 0,
            pgtables_kib: 128,
            cgroup_id: 5612,
            oom_score_adj: -500,
            _pad: 0,
            victim_comm,
        });
        round_trip(TcpCloseEvent {
            header: header(Kind::TcpClose),
            sk: 0xffff_8880_1234_5678,
            sock: SockInfo {
                start_ns: 1,
                bytes_sent: 2,
                bytes_received: 3,
                tgid: 41,
                retransmits: 4,
                flags: SOCK_OUTBOUND | SOCK_ESTABLISHED,
                family: 2,
                local_port: 40000,
                remote_port: 443,
                local_addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ..Default::default()
            },
        });
        round_trip(TracepointOffsets {
            bind_fd: Field::at(16),
            bind_addr: Field::at(24),
            bind_addrlen: Field::at(32),
            bind_ret: Field::at(16),
            ..Default::default()
        });
    }

    #[test]
    fn header_is_first_in_every_record() {
        let b = BindEvent {
            header: header(Kind::Bind),
            ..Default::default()
        };
        let h: EventHeader = read_record(as_bytes(&b)).expect("header");
        assert_eq!(Kind::from_u32(h.kind), Some(Kind::Bind));
        let e = ExecEvent {
            header: header(Kind::Exec),
            ..Default::default()
        };
        assert_eq!(
            read_record::<EventHeader>(as_bytes(&e)).map(|h| h.kind),
            Some(Kind::Exec as u32)
        );
    }
}
