"""FUSE over io_uring (Linux 6.14+): one queue per possible CPU, each served by its own thread
and io_uring instance (include/uapi/linux/fuse.h, fs/fuse/dev_uring.c).

Every queue registers `depth` entries (FUSE_IO_URING_CMD_REGISTER): a 288-byte header buffer
and a payload buffer of the connection's largest request. A request arrives as the completion
of its entry's command: fuse_in_header in the header's first 128 bytes, the opcode's fixed
argument struct in the next 128, the rest (names, write data) in the payload. The reply goes
back in the same buffers (fuse_out_header, then the reply in the payload) with
FUSE_IO_URING_CMD_COMMIT_AND_FETCH, which also waits for the entry's next request: one
io_uring_enter answers every request ready and waits for more.

Plain-mode READ and WRITE are answered here (the hot path): a lone one with preadv/pwrite,
several at once as READ/WRITE operations on the same ring, so the disk sees the caller's queue
depth. Everything else goes through the one dispatch. FORGET and INTERRUPT still come through
/dev/fuse (the kernel sends them there): the server keeps one /dev/fuse worker for them."""

from __future__ import annotations

import errno
import os
import struct
import threading
from typing import Callable

from bench.fusefs import protocol as p
from bench.fusefs import uring
from bench.fusefs.buffers import address, io_buffer
from bench.fusefs.dispatch import Dispatcher
from bench.fusefs.stats import Counters

CMD_REGISTER = 1
CMD_COMMIT_AND_FETCH = 2
# The SQE of a FUSE ring command; struct fuse_uring_cmd_req in its command area: flags, commit_id, qid.
CMD_SQE = uring.command_sqe("QQH6x")
HEADER_SIZE = 288  # struct fuse_uring_req_header
OP_IN = 128  # where the opcode's argument struct starts in the header
OP_IN_SIZE = 128
PAYLOAD_SZ = 256 + 16  # fuse_uring_ent_in_out.payload_sz
IOVEC = struct.Struct("<QQ")
# Completions handled between two io_uring_enter calls. Why: handling a whole burst (up to
# the queue depth) before submitting delays every commit, and so the caller's next requests,
# behind the last one; measured at 4k QD32 in one sitting: 1: 45k IOPS, 2: 50k, 4: 55-58k,
# 8: 55k, 32: 49k.
CHUNK = 4
# A READ or WRITE is answered with a blocking preadv/pwrite once this many rounds in a row had
# it alone (nothing else in flight): at QD1 that saves the ring round trip of the backing I/O
# (about 5%); under load a blocking call would hold up the whole queue, so it goes to the ring.
SYNC_AFTER = 16
# The ring ends: the kernel tore the queues down (unmount, abort) or the daemon is exiting.
ENDED = (errno.ENOTCONN, errno.ECONNABORTED, errno.ECANCELED, errno.ENODEV)


def device_message(headers: bytearray, at: int, payload: memoryview, length: int) -> bytes | None:
    """The request of the entry whose header starts at `at`, laid out as /dev/fuse delivers it
    (fuse_in_header, the opcode's argument struct, the rest), for the dispatch; None when its
    sizes do not add up. The header's `len` is the request's /dev/fuse length, so the struct's
    size is what remains after the header and the payload."""
    payload_sz = p.U32.unpack_from(headers, at + PAYLOAD_SZ)[0]
    op_in = length - p.IN_HEADER_SIZE - payload_sz
    if not 0 <= op_in <= OP_IN_SIZE or payload_sz > len(payload):
        return None
    return bytes(headers[at:at + p.IN_HEADER_SIZE]) + bytes(headers[at + OP_IN:at + OP_IN + op_in]) + payload[:payload_sz]


def payload_size(max_write: int, max_pages: int) -> int:
    """The payload buffer the kernel requires of every entry (fuse_uring_create: the largest of
    FUSE_MIN_READ_BUFFER, max_write and max_pages pages)."""
    return max(p.MIN_READ_BUFFER, max_write, max_pages * 4096)


class RingChannel:
    """Replies written into one entry's buffers; `Queue` commits them."""

    __slots__ = ("queue", "entry")

    def __init__(self, queue: Queue) -> None:
        self.queue, self.entry = queue, 0

    def send(self, unique: int, body: bytes) -> bool:
        """Put a successful reply in the entry (always delivered: the kernel keeps a request
        sent to a ring until it is committed)."""
        self.queue.reply_body(self.entry, unique, body)
        return True

    def fail(self, unique: int, err: int) -> None:
        """Put an error reply in the entry and count it."""
        self.queue.commit(self.entry, unique, 0, err)


class Queue:
    """One ring queue: its entries' buffers, its io_uring and the thread serving it."""

    def __init__(self, session: int, qid: int, depth: int, payload: int, counters: Counters,
                 dispatcher: Dispatcher, fast: bool, batch: bool,
                 writeback_fd: Callable[[int], int], poll: float = 0.0) -> None:
        self.session, self.qid, self.depth, self.payload = session, qid, depth, payload
        self.counters, self.dispatcher = counters, dispatcher
        self._fast, self._batch, self._writeback_fd = fast, batch, writeback_fd
        self._poll_ns = int(poll * 1e9)  # how long to look for work before sleeping (ring_poll)
        self.headers = bytearray(depth * HEADER_SIZE)
        self.payloads = io_buffer(depth * payload)  # page-aligned slices: O_DIRECT backing I/O
        self._views = [memoryview(self.payloads)[i * payload:(i + 1) * payload] for i in range(depth)]
        self._iovecs = bytearray(depth * 2 * IOVEC.size)
        headers_at, payloads_at = address(self.headers), address(self.payloads)
        for i in range(depth):
            IOVEC.pack_into(self._iovecs, i * 2 * IOVEC.size, headers_at + i * HEADER_SIZE, HEADER_SIZE)
            IOVEC.pack_into(self._iovecs, (i * 2 + 1) * IOVEC.size, payloads_at + i * payload, payload)
        self._iovecs_at, self._payloads_at = address(self._iovecs), payloads_at
        self.registered = threading.Event()
        self.failure: str | None = None  # why registering failed
        self._ring: uring.Ring | None = None
        self._channel = RingChannel(self)

    # -- replies -----------------------------------------------------------------------------

    def commit(self, entry: int, unique: int, size: int, err: int = 0) -> None:
        """Answer the entry's request with `size` payload bytes (or -`err`) and fetch its next."""
        h = entry * HEADER_SIZE
        if err:
            errors = self.counters.errors
            errors[err] = errors.get(err, 0) + 1
            size = 0
        p.OUT_HEADER.pack_into(self.headers, h, p.OUT_HEADER_SIZE + size, -err, unique)
        p.U32.pack_into(self.headers, h + PAYLOAD_SZ, size)
        self._ring.push(CMD_SQE, uring.OP_URING_CMD, 0, 0, self.session, CMD_COMMIT_AND_FETCH, 0, 0, 0,
                        entry, 0, unique, self.qid)

    def reply_body(self, entry: int, unique: int, body: bytes) -> None:
        """Answer with `body` as the reply's payload."""
        size = len(body)
        self._views[entry][:size] = body
        self.commit(entry, unique, size)

    # -- serving -----------------------------------------------------------------------------

    def serve(self) -> None:
        """Register the entries, then serve until the kernel ends the queue. A queue that cannot
        be set up says why in `failure`; `registered` is set either way."""
        ring = None
        try:
            ring = self._ring = uring.Ring(2 * self.depth)  # a commit and a backing I/O per entry
            for i in range(self.depth):
                ring.push(CMD_SQE, uring.OP_URING_CMD, 0, 0, self.session, CMD_REGISTER,
                          self._iovecs_at + i * 2 * IOVEC.size, 2, 0, i, 0, 0, self.qid)
            ring.submit_and_wait(0)
            early = ring.completions(self.depth)  # a failed REGISTER completes at once; a good one waits
            refused = [res for _, res in early if res < 0]
            if refused:
                self.failure = f"FUSE_IO_URING_CMD_REGISTER on queue {self.qid}: {os.strerror(-refused[0])}"
                return
        except OSError as exc:
            self.failure = f"setting up queue {self.qid}: {exc.strerror or exc}"
            return
        finally:
            self.registered.set()
            if self.failure and ring is not None:
                ring.close()
        try:
            self._loop(ring, early)
        finally:
            self._ring = None
            ring.close()

    def _loop(self, ring: uring.Ring, ready: list[tuple[int, int]]) -> None:
        """Answer what completed, submit the answers (and the backing I/O) with one
        io_uring_enter, which also waits for more when nothing is left to handle. Plain-mode
        READ and WRITE are decoded here, not in _request: this is the hot path."""
        depth, headers, views = self.depth, self.headers, self._views
        requests, push, done = self.counters.requests, ring.push, self._data_done
        payloads_at, payload = self._payloads_at, self.payload
        fast, batch, poll = self._fast, self._batch, self._poll_ns
        SQE_RW, OP_READ, OP_WRITE = uring.SQE_RW, uring.OP_READ, uring.OP_WRITE
        READ, WRITE, MAX, WRITE_CACHE = int(p.Opcode.READ), int(p.Opcode.WRITE), p.MAX_OPCODE, p.FUSE_WRITE_CACHE
        unpack_head, unpack_io, preadv, pwrite = p.IN_HEADER_HEAD.unpack_from, p.READ_IN.unpack_from, os.preadv, os.pwrite
        in_flight: dict[int, tuple[int, int]] = {}  # entry: (unique, opcode) of its backing READ/WRITE
        data: list[tuple[int, int, int, int, int, int]] = []  # READ/WRITE to do: entry, unique, opcode, fd, offset, size
        alone = 0  # rounds in a row with one READ or WRITE and nothing in flight
        while True:
            for user_data, res in ready:
                if user_data >= depth:  # a backing READ or WRITE finished
                    entry = user_data - depth
                    unique, opcode = in_flight.pop(entry)
                    done(entry, unique, opcode, res)
                    continue
                if res < 0:
                    # Unmounted or aborted: the kernel ends the requests still held here itself
                    # (they are torn down with the queue), so nothing is left to answer.
                    if -res in ENDED:
                        return
                    raise OSError(-res, f"ring queue {self.qid}: {os.strerror(-res)}")
                h = user_data * HEADER_SIZE
                length, opcode, unique, _ = unpack_head(headers, h)
                requests[opcode if opcode < MAX else 0] += 1
                if fast and (opcode == READ or opcode == WRITE):
                    fd, offset, size, flags = unpack_io(headers, h + OP_IN)
                    if flags & WRITE_CACHE and opcode == WRITE:
                        fd = self._writeback(user_data, unique, fd)
                        if fd < 0:
                            continue
                    data.append((user_data, unique, opcode, fd, offset, size))
                else:
                    self._request(user_data, length, unique)
            if data:
                alone = alone + 1 if len(data) == 1 and not in_flight else 0
                if not batch or alone >= SYNC_AFTER:
                    for entry, unique, opcode, fd, offset, size in data:
                        try:
                            if opcode == READ:
                                got = preadv(fd, [views[entry][:size]], offset)
                            else:
                                got = pwrite(fd, views[entry][:size], offset)
                        except OSError as exc:
                            got = -(exc.errno or errno.EIO)
                        done(entry, unique, opcode, got)
                else:
                    for entry, unique, opcode, fd, offset, size in data:
                        in_flight[entry] = (unique, opcode)
                        push(SQE_RW, OP_READ if opcode == READ else OP_WRITE, 0, 0, fd, offset,
                             payloads_at + entry * payload, size, 0, depth + entry)
                data.clear()
            if poll and not ring.ready():
                ring.poll(poll)
            ring.submit_and_wait_idle()
            ready = ring.completions(CHUNK)

    def _writeback(self, entry: int, unique: int, fh: int) -> int:
        """The fd a WRITE of the kernel's writeback goes to (bench.fusefs.writeback); -1 when it
        cannot be had (the request is answered with the error)."""
        try:
            return self._writeback_fd(fh)
        except OSError as exc:
            self.commit(entry, unique, 0, exc.errno or errno.EIO)
            return -1

    def _request(self, entry: int, length: int, unique: int) -> None:
        """Serve the request in `entry` through the dispatch."""
        msg = device_message(self.headers, entry * HEADER_SIZE, self._views[entry], length)
        if msg is None:
            self.commit(entry, unique, 0, errno.EPROTO)
            return
        self._channel.entry = entry
        self.dispatcher.handle(self._channel, msg)

    def _data_done(self, entry: int, unique: int, opcode: int, res: int) -> None:
        """Answer a READ or WRITE whose backing I/O through the ring returned `res`."""
        if res < 0:
            self.commit(entry, unique, 0, -res)
        elif opcode == p.Opcode.READ:
            self.counters.bytes[0] += res
            self.commit(entry, unique, res)
        else:
            self.counters.bytes[1] += res
            self._write_reply(entry, unique, res)

    def _write_reply(self, entry: int, unique: int, written: int) -> None:
        p.WRITE_OUT.pack_into(self.payloads, entry * self.payload, written, 0)
        self.commit(entry, unique, p.WRITE_OUT.size)
