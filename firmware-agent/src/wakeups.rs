//! An edge-triggered epoll set over the fds a reader waits on (a ring buffer's map fd, or one
//! perf event per CPU), each registered once: the set becomes readable only for a wake-up
//! that comes after the last `take`, never again for records already announced or submitted
//! without one (re-arming a registration would report those at once and undo the probes'
//! batched wake-ups). Ring buffers and perf buffers both wait through it, registered with
//! the pipeline's tokio runtime (`Readable`).

use std::{
    future::Future,
    io,
    os::fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    pin::Pin,
    time::Duration,
};

use tokio::io::{Interest, unix::AsyncFd};

pub struct EdgeSet(OwnedFd);

impl EdgeSet {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the new fd is owned at once.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(ep) }))
    }

    /// Adds `fd`, readable-edge-triggered, with `token` as its event data.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: valid fds and event.
        if unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes every pending edge without waiting.
    pub fn take(&self) -> io::Result<()> {
        const N: usize = 16;
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; N];
        loop {
            // SAFETY: a valid buffer of N events; timeout 0 never blocks.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), evs.as_mut_ptr(), N as i32, 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if (n as usize) < N {
                return Ok(());
            }
        }
    }

    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self(self.0.try_clone()?))
    }
}

impl AsFd for EdgeSet {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl std::os::fd::AsRawFd for EdgeSet {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// An `EdgeSet` registered with the current tokio runtime.
pub struct Readable(AsyncFd<EdgeSet>);

impl Readable {
    pub fn new(set: EdgeSet) -> io::Result<Self> {
        // SAFETY: the set owns its fd, which stays open and the same for as long as the
        // registration (the AsyncFd owns the set, and drops the registration first).
        unsafe { AsyncFd::register_with_interest(set, Interest::READABLE) }
            .map(Self)
            .map_err(io::Error::from)
    }

    pub fn get_ref(&self) -> &EdgeSet {
        self.0.get_ref()
    }

    /// Resolves once the set has had an edge since the last call returned. Callers `take`
    /// after this returns and before they read: an edge that comes after the readiness is
    /// cleared here is then either taken or reported again.
    pub async fn readable(&self) -> io::Result<()> {
        let mut guard = self.0.readable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// A reader's wait between drains: true once the set is readable or `nap` (if any) has
    /// passed, false once `stop` resolves.
    pub async fn wait<S>(&self, nap: Option<Duration>, stop: Pin<&mut S>) -> io::Result<bool>
    where
        S: Future<Output = ()>,
    {
        futures_lite::future::or(
            async { self.readable().await.map(|()| true) },
            futures_lite::future::or(
                async {
                    match nap {
                        Some(d) => tokio::time::sleep(d).await,
                        None => futures_lite::future::pending::<()>().await,
                    }
                    Ok(true)
                },
                async {
                    stop.await;
                    Ok(false)
                },
            ),
        )
        .await
    }
}
