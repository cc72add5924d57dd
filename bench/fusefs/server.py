"""The FUSE session: mount, INIT, worker threads (one cloned /dev/fuse fd each), unmount.

The server is given the file system's operations (bench.fusefs.operations); every request
goes through the one dispatch (bench.fusefs.dispatch) but, in plain mode, READ and WRITE,
which the serve loops answer themselves from page-aligned buffers (the hot path)."""

from __future__ import annotations

import errno
import mmap
import os
import resource
import select
import signal
import threading
from typing import Any, Callable

from bench.fusefs import aio, device, mounts, ring, wire
from bench.fusefs import protocol as p
from bench.fusefs.buffers import address, io_buffer
from bench.fusefs.dispatch import (
    Channel,
    DeviceChannel,
    Dispatcher,
    send,
    send_error,
    warn,
)
from bench.fusefs.errors import MountError, ServerError
from bench.fusefs.kernel import possible_cpus
from bench.fusefs.operations import Connection, Operations
from bench.fusefs.options import Options
from bench.fusefs.protocol import Opcode
from bench.fusefs.stats import Counters, StatsWriter, daemon_fds, snapshot

# No AUTO_INVAL_DATA: with it, a reader's mtime check can drop a page that a concurrent
# write-through just filled and re-read the old bytes before the daemon applied the WRITE
# (reproduced by the concurrent readers/writers test). Page cache is still dropped at open.
WANTED_FLAGS = (p.ASYNC_READ | p.BIG_WRITES | p.ASYNC_DIO | p.MAX_PAGES | p.PARALLEL_DIROPS
                | p.DO_READDIRPLUS | p.READDIRPLUS_AUTO | p.INIT_EXT)
URING_OFF_HINT = "is /sys/module/fuse/parameters/enable_uring Y?"
REGISTER_TIMEOUT_S = 10  # a queue's registration is one io_uring_enter: this is only a safety net
RETRY_READ = (errno.ENOENT, errno.EINTR, errno.EAGAIN)  # ENOENT: the request was interrupted
Dispatch = Callable[[Channel, bytes], None]  # serves one request, replying on the channel


def connection_ended(exc: OSError) -> bool:
    """After a failed read of /dev/fuse: True when the connection is gone (ENODEV: unmounted
    or aborted), False when the read is to be retried (interrupted); anything else is raised."""
    if exc.errno == errno.ENODEV:
        return True
    if exc.errno in RETRY_READ:
        return False
    raise exc


def message(n: int, head: bytearray, data: mmap.mmap) -> bytes:
    """The `n`-byte request a serve loop read into `head` and `data` (a copy: not on the hot
    path)."""
    return bytes(head[:n]) if n <= len(head) else bytes(head) + data[: n - len(head)]


class DataReplies:
    """Answers plain-mode READ and WRITE from one worker's page-aligned buffers (the hot path)."""

    def __init__(self, counters: Counters, data: memoryview, out: memoryview,
                 writeback_fd: Callable[[int], int]) -> None:
        self._writeback_fd = writeback_fd
        self._read_hdr = bytearray(p.OUT_HEADER_SIZE)
        self._write_reply = bytearray(p.OUT_HEADER_SIZE + p.WRITE_OUT.size)
        self._nbytes, self._errors = counters.bytes, counters.errors
        self._data, self._out = data, out

    def read(self, fd: int, unique: int, head: bytearray, at: int = 0) -> None:
        """preadv into the reply buffer (from byte `at`), then answer with the bytes read."""
        fh, offset, size, _ = p.READ_IN.unpack_from(head, 40)
        try:
            got = os.preadv(fh, [self._out[at : at + size]], offset)
        except OSError as exc:
            send_error(fd, unique, exc.errno, self._errors)
            return
        self.send_read(fd, unique, at, got)

    def send_read(self, fd: int, unique: int, at: int, got: int) -> None:
        """Answer a READ with the `got` bytes at byte `at` of the reply buffer (header and data
        in one writev); a negative `got` is the read's -errno."""
        if got < 0:
            send_error(fd, unique, -got, self._errors)
            return
        self._nbytes[0] += got
        p.OUT_HEADER.pack_into(self._read_hdr, 0, 16 + got, 0, unique)
        try:
            os.writev(fd, [self._read_hdr, self._out[at : at + got]])
        except OSError:
            pass  # interrupted: the reader is gone

    def write(self, fd: int, unique: int, head: bytearray) -> None:
        """pwrite the request's data (already page-aligned in the data buffer), then reply."""
        fh, offset, size, write_flags = p.WRITE_IN.unpack_from(head, 40)
        try:
            if write_flags & p.FUSE_WRITE_CACHE:
                fh = self._writeback_fd(fh)
            got = os.pwrite(fh, self._data[:size], offset)
        except OSError as exc:
            send_error(fd, unique, exc.errno, self._errors)
            return
        self._nbytes[1] += got
        p.OUT_HEADER.pack_into(self._write_reply, 0, 24, 0, unique)
        p.WRITE_OUT.pack_into(self._write_reply, 16, got, 0)
        try:
            os.write(fd, self._write_reply)
        except OSError:
            pass


class Server:
    """One mount of the file system `ops`, served until unmounted or signalled."""

    def __init__(self, ops: Operations, opts: Options) -> None:
        self.ops = ops
        self.opts = opts
        self.connection: int | None = None
        self._session = -1
        self._mounted = False
        self._counters: list[Counters] = []
        self._queues: list[ring.Queue] = []  # transport uring
        self._negotiated: dict[str, Any] | None = None  # what INIT agreed (the stats file's "init")
        self._wake = threading.Event()
        self._signalled = False
        self._broken: str | None = None  # why the server stopped serving (a ring queue died)
        self._bufsize = max(p.MIN_READ_BUFFER, opts.max_write + 4096)
        # Fds as fh (plain mode): READ and WRITE are answered in the serve loops.
        self._fast = ops.fh_is_fd

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> int:
        """Mount, serve until unmounted (exit 0) or SIGINT/SIGTERM (unmount, exit 0)."""
        if self.opts.nofile:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.opts.nofile, self.opts.nofile))
            except (ValueError, OSError) as exc:
                raise MountError(f"cannot set --nofile {self.opts.nofile}: {exc}") from None
        os.umask(0)  # the kernel already applied the client's umask
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        mount = device.mount_root if os.geteuid() == 0 else device.mount_fusermount
        try:
            self._session = mount(self.opts.mountpoint, self.opts.max_write)
        except OSError as exc:
            raise MountError(f"cannot mount {self.opts.mountpoint}: {exc.strerror or exc}") from None
        self._mounted = True
        stats = None
        try:
            agreed = self._init()
            self.ops.init(Connection(self._session, agreed))
            workers = self._start_queues() if self.opts.transport == "uring" else self._start_workers()
            self.connection = mounts.connection_id(self.opts.mountpoint)
            if self.opts.stats_file:
                stats = StatsWriter(self.opts.stats_file, self.opts.stats_interval, self.stats)
                stats.start()
            self._wait(workers)
        finally:
            if self._mounted:
                self._unmount()
            if stats is not None:
                stats.stop()
        if self._broken:
            raise ServerError(f"unmounted: {self._broken}")
        return 0

    def _unmount(self) -> None:
        try:
            mounts.unmount(self.opts.mountpoint)
        except OSError as exc:
            warn(f"cannot unmount {self.opts.mountpoint}: {exc}")
        self._mounted = False

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signalled = True
        self._wake.set()

    def _wait(self, workers: list[threading.Thread]) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            if self._signalled or self._broken:
                self._unmount()
                for worker in workers:
                    worker.join(2.0)  # a detached mount may still be busy: do not wait for it
                return
            if not any(worker.is_alive() for worker in workers):
                self._mounted = False  # unmounted from outside (ENODEV)
                return

    def stats(self) -> dict[str, Any]:
        """The stats file's content (docs/INTERNALS.md)."""
        data: dict[str, Any] = {
            "pid": os.getpid(), "mode": self.opts.mode,
            "fd_policy": self.opts.fd_policy if self.opts.passthrough else None,
            "xattr": self.opts.xattr, "transport": self.opts.transport, "options": self.opts.summary(),
            "connection": self.connection, "mounted": self._mounted, "init": self._negotiated,
        }
        data.update(snapshot(self._counters), daemon_fds=daemon_fds())
        if self._queues:
            data["ring"] = {"queues": len(self._queues), "depth": self.opts.ring_depth,
                            "requests": snapshot([q.counters for q in self._queues])["requests"]}
        data.update(self.ops.stats())
        return data

    # -- INIT --------------------------------------------------------------------------------

    def _init(self) -> int:
        """Answer INIT on the session fd; passthrough must be offered or the mount fails.
        Returns the agreed flags."""
        buf = bytearray(self._bufsize)
        while True:
            try:
                os.readv(self._session, [buf])
                break
            except OSError as exc:
                if exc.errno not in RETRY_READ:
                    raise MountError(f"reading INIT from /dev/fuse failed: {exc.strerror}") from None
        opcode, ctx = wire.header(buf)
        if opcode != Opcode.INIT:
            raise MountError(f"expected INIT from the kernel, got opcode {opcode}")
        init = wire.init_in(buf)
        if init.major != p.KERNEL_MAJOR:
            send_error(self._session, ctx.unique, errno.EPROTO, {})
            raise MountError(f"unsupported FUSE protocol {init.major}.{init.minor}")
        wanted = WANTED_FLAGS
        if self.opts.writeback_cache:
            wanted |= p.WRITEBACK_CACHE
        if self.opts.passthrough:
            wanted |= p.PASSTHROUGH
        if self.opts.transport == "uring":
            wanted |= p.OVER_IO_URING
        agreed = wanted & init.flags
        background = self.opts.max_background
        reply = wire.init_out(
            init, agreed, max_background=background, congestion_threshold=max(1, background * 3 // 4),
            max_write=self.opts.max_write, max_pages=self.opts.max_pages,
            max_stack_depth=1 if self.opts.passthrough else 0,
        )
        send(self._session, ctx.unique, reply)
        major, minor = p.INIT_OUT.unpack_from(reply)[:2]
        self._negotiated = {
            "kernel_protocol": f"{init.major}.{init.minor}", "protocol": f"{major}.{minor}",
            "kernel_flags": p.init_flag_names(init.flags), "flags": p.init_flag_names(agreed),
            "max_write": self.opts.max_write, "max_pages": self.opts.max_pages,
            "max_background": background,
        }
        if self.opts.passthrough and not agreed & p.PASSTHROUGH:
            raise MountError(f"passthrough refused: the kernel (FUSE 7.{init.minor}) did not offer PASSTHROUGH in INIT")
        if self.opts.transport == "uring" and not agreed & p.OVER_IO_URING:
            raise MountError(f"transport uring refused: the kernel (FUSE 7.{init.minor}) did not offer "
                             f"OVER_IO_URING in INIT ({URING_OFF_HINT})")
        return agreed

    # -- workers -----------------------------------------------------------------------------

    def _start_workers(self, count: int | None = None, batch: bool = True) -> list[threading.Thread]:
        """Transport dev: `count` (default: the threads option) workers, each reading its own
        clone of /dev/fuse."""
        count = self.opts.workers if count is None else count
        fds = [self._session] + [device.clone(self._session) for _ in range(count - 1)]
        workers = []
        for index, fd in enumerate(fds):
            counters = Counters()
            self._counters.append(counters)
            worker = threading.Thread(target=self._worker, args=(fd, counters, batch),
                                      name=f"fusefs-{index}", daemon=True)
            worker.start()
            workers.append(worker)
        return workers

    def _start_queues(self) -> list[threading.Thread]:
        """Transport uring: one thread and io_uring per CPU queue, plus one /dev/fuse worker for
        FORGET and INTERRUPT. Returns once every queue registered; a queue the kernel refused
        fails the mount (the kernel would otherwise quietly go back to /dev/fuse)."""
        workers = self._start_workers(count=1, batch=False)
        payload = ring.payload_size(self.opts.max_write, self.opts.max_pages)
        for qid in range(possible_cpus()):
            counters = Counters()
            self._counters.append(counters)
            queue = ring.Queue(self._session, qid, self.opts.ring_depth, payload, counters,
                               Dispatcher(self.ops), self._fast, self.opts.batch > 1, self.ops.writeback_fd,
                               self.opts.ring_poll)
            worker = threading.Thread(target=self._serve_queue, args=(queue,), name=f"fusefs-ring-{qid}",
                                      daemon=True)
            worker.start()
            self._queues.append(queue)
            workers.append(worker)
        for queue in self._queues:
            if not queue.registered.wait(REGISTER_TIMEOUT_S):
                raise MountError(f"transport uring refused: queue {queue.qid} not set up after {REGISTER_TIMEOUT_S} s")
            if queue.failure:
                raise MountError(f"transport uring refused: {queue.failure}")
        return workers

    def _serve_queue(self, queue: ring.Queue) -> None:
        try:
            queue.serve()
        except Exception as exc:
            # The kernel would go on queueing this CPU's requests to it, and their callers hang:
            # the server unmounts instead (exit 1).
            self._broken = f"ring queue {queue.qid} stopped: {exc!r}"
            warn(self._broken)
        finally:
            self._wake.set()

    def _worker(self, fd: int, counters: Counters, batched: bool = True) -> None:
        try:
            dispatch = Dispatcher(self.ops).handle
            batch = None
            if self._fast and batched and self.opts.batch > 1:
                try:
                    batch = aio.Batch(self.opts.batch)
                except OSError as exc:
                    warn(f"no native AIO ({exc.strerror}): one pread per READ")
            if batch is None:
                self._serve(fd, counters, dispatch)
            else:
                try:
                    self._serve_batched(fd, counters, batch, dispatch)
                finally:
                    batch.close()
        except Exception as exc:  # a bug must not take the mount down silently
            warn(f"worker {threading.current_thread().name} stopped: {exc!r}")
        finally:
            self._wake.set()

    def _serve(self, fd: int, counters: Counters, dispatch: Dispatch) -> None:
        """Read requests until ENODEV. READ and WRITE of plain mode are answered inline."""
        channel = DeviceChannel(fd, counters.errors)
        head = bytearray(p.IN_HEADER_SIZE + p.WRITE_IN_SIZE)
        # Write data lands page-aligned in `data` (O_DIRECT backing fds need that); READ replies
        # are read into the page-aligned `out`.
        data = io_buffer(self._bufsize)
        out = io_buffer(self.opts.max_write)
        iov = [head, data]
        replies = DataReplies(counters, memoryview(data), memoryview(out), self.ops.writeback_fd)
        answer_read, answer_write = replies.read, replies.write
        requests = counters.requests
        fast = self._fast
        readv, unpack_head = os.readv, p.IN_HEADER_HEAD.unpack_from
        READ, WRITE, MAX = int(Opcode.READ), int(Opcode.WRITE), p.MAX_OPCODE  # plain ints on the hot path
        while True:
            try:
                n = readv(fd, iov)
            except OSError as exc:
                if connection_ended(exc):
                    return
                continue
            _, opcode, unique, _ = unpack_head(head)
            if opcode == READ and fast:
                requests[READ] += 1
                answer_read(fd, unique, head)
            elif opcode == WRITE and fast:
                requests[WRITE] += 1
                answer_write(fd, unique, head)
            else:
                requests[opcode if opcode < MAX else 0] += 1
                dispatch(channel, message(n, head, data))

    def _serve_batched(self, fd: int, counters: Counters, batch: aio.Batch, dispatch: Dispatch) -> None:
        """Plain mode, READs pipelined through native AIO. A worker with nothing in flight
        blocks reading one request from `fd`; with reads in flight it polls for a request or a
        completion. Requests queued in the device are then read from a second, non-blocking
        clone of it until it is empty; their READs go to the disk with one io_submit (one
        virtio kick per batch) while earlier ones are still in flight, and every finished read
        is answered at once. So the disk queue stays as deep as the caller's. A lone READ
        with nothing in flight is answered with preadv directly (no AIO round trip);
        everything else as in `_serve`. Replies go to the fd the request was read from (the
        kernel matches them per fd)."""
        nonblocking = device.clone(self._session)
        try:
            os.set_blocking(nonblocking, False)
            self._serve_batched_loop(fd, nonblocking, counters, batch, dispatch)
        finally:
            os.close(nonblocking)

    def _serve_batched_loop(self, fd: int, nonblocking: int, counters: Counters, batch: aio.Batch,
                            dispatch: Dispatch) -> None:
        slots = batch.slots
        mw = self.opts.max_write
        heads = [bytearray(p.IN_HEADER_SIZE + p.WRITE_IN_SIZE) for _ in range(slots)]
        data = io_buffer(self._bufsize)
        out = io_buffer(mw * slots)  # one page-aligned reply buffer per slot
        out_addr = address(out)
        iovs = [[head, data] for head in heads]
        slot_unique = [0] * slots
        slot_fd = [fd] * slots
        free = list(range(slots))  # slots whose head and reply buffer are not in use
        queued: list[int] = []  # slots holding a READ not submitted yet
        in_flight = 0
        replies = DataReplies(counters, memoryview(data), memoryview(out), self.ops.writeback_fd)
        answer_read, answer_write = replies.read, replies.write
        requests, errors = counters.requests, counters.errors
        channels = {fd: DeviceChannel(fd, errors), nonblocking: DeviceChannel(nonblocking, errors)}
        readv, unpack_head, unpack_io = os.readv, p.IN_HEADER_HEAD.unpack_from, p.READ_IN.unpack_from
        prepare, submit, answer_done = batch.prepare, self._submit, self._answer_done
        poller = select.poll()
        poller.register(nonblocking, select.POLLIN)
        poller.register(batch.eventfd, select.POLLIN)
        READ, WRITE, MAX = int(Opcode.READ), int(Opcode.WRITE), p.MAX_OPCODE  # plain ints on the hot path
        while True:
            if in_flight and free:
                poller.poll()  # a new request, or a finished read
            rfd = nonblocking if in_flight else fd  # nothing in flight: block for a request
            # Read requests until the device is empty (or no slot is left for another READ).
            while free:
                slot = free[-1]
                try:
                    n = readv(rfd, iovs[slot])
                except BlockingIOError:
                    break
                except OSError as exc:
                    if connection_ended(exc):
                        return
                    continue
                head = heads[slot]
                _, opcode, unique, _ = unpack_head(head)
                if opcode == READ:
                    requests[READ] += 1
                    slot_unique[slot], slot_fd[slot] = unique, rfd
                    queued.append(free.pop())
                elif opcode == WRITE:
                    requests[WRITE] += 1
                    answer_write(rfd, unique, head)
                else:
                    requests[opcode if opcode < MAX else 0] += 1
                    dispatch(channels[rfd], message(n, head, data))
                rfd = nonblocking
            if queued:
                if len(queued) == 1 and not in_flight:  # a lone READ: no AIO round trip
                    slot = queued.pop()
                    answer_read(slot_fd[slot], slot_unique[slot], heads[slot], slot * mw)
                    free.append(slot)
                else:
                    for index, slot in enumerate(queued):
                        fh, offset, size, _ = unpack_io(heads[slot], 40)
                        prepare(index, slot, fh, out_addr + slot * mw, size, offset)
                    in_flight += submit(batch, queued, slot_fd, slot_unique, free, errors)
                    queued.clear()
            if in_flight:
                done = batch.reap(0 if free else 1)
                answer_done(batch, done, slot_fd, slot_unique, replies, mw, free)
                in_flight -= done

    @staticmethod
    def _submit(batch: aio.Batch, queued: list[int], slot_fd: list[int], slot_unique: list[int],
                free: list[int], errors: dict[int, int]) -> int:
        """io_submit the prepared READs of `queued`; answer any the kernel refused with its
        error (their slots back to `free`). Returns how many are in flight."""
        try:
            submitted = batch.submit(len(queued))
            err = errno.EIO
        except OSError as exc:
            submitted, err = 0, exc.errno or errno.EIO
        for slot in queued[submitted:]:
            send_error(slot_fd[slot], slot_unique[slot], err, errors)
            free.append(slot)
        return submitted

    @staticmethod
    def _answer_done(batch: aio.Batch, count: int, slot_fd: list[int], slot_unique: list[int],
                     replies: DataReplies, slot_size: int, free: list[int]) -> None:
        """Answer the `count` finished reads in `batch.events`; their slots go back to `free`."""
        unpack_event, events, event_size = aio.EVENT.unpack_from, batch.events, aio.EVENT.size
        send_read = replies.send_read
        for i in range(count):
            slot, _, res, _ = unpack_event(events, i * event_size)
            free.append(slot)
            send_read(slot_fd[slot], slot_unique[slot], slot * slot_size, res)
