"""Test media: videos composed from real photos (demo/videos.py, re-exported here) and a local RTSP server
that streams a clip."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

from demo.videos import Image, compose_visit_video, load_photo, write_video

__all__ = ["Image", "RtspServer", "compose_visit_video", "load_photo", "write_video"]


class RtspServer:
    """An RTSP server on 127.0.0.1 for one stream, fed by a real ffmpeg process.

    ffmpeg 5.1 cannot serve RTSP itself: `-rtsp_flags listen` applies to its demuxer (receiving a
    published stream); its muxer only publishes to a server. So ffmpeg encodes the clip (H.264, like a
    camera) and sends RTP over UDP to this server, which answers the client's RTSP requests (DESCRIBE
    with ffmpeg's SDP, SETUP with RTP interleaved over TCP, PLAY) and relays the packets. While no packet
    arrived for a second, DESCRIBE answers 404, as a camera that is down refuses connections.
    """

    def __init__(self, workdir: Path) -> None:
        self.sdp = workdir / "stream.sdp"
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", 0))
        self._udp.settimeout(0.2)
        self._tcp = socket.create_server(("127.0.0.1", 0))
        self._tcp.settimeout(0.2)
        self.url = f"rtsp://127.0.0.1:{self._tcp.getsockname()[1]}/cam"
        self.ffmpeg: subprocess.Popen[bytes] | None = None
        self._last_packet = 0.0
        self._playing: dict[int, tuple[socket.socket, threading.Lock]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        for target in (self._pump, self._accept):
            threading.Thread(target=target, daemon=True).start()

    def start_ffmpeg(self, clip: Path) -> None:
        port = self._udp.getsockname()[1]
        self.ffmpeg = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
             "-an", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "8",
             "-f", "rtp", "-sdp_file", str(self.sdp), f"rtp://127.0.0.1:{port}?pkt_size=1200"],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def kill_ffmpeg(self) -> None:
        """Kill the ffmpeg process this server started (by its PID), as a camera dying mid-stream."""
        if self.ffmpeg is not None:
            self.ffmpeg.kill()
            self.ffmpeg.wait(timeout=10)
            self.ffmpeg = None

    def close(self) -> None:
        self.kill_ffmpeg()
        self._closed.set()
        with self._lock:
            for conn, _ in self._playing.values():
                conn.close()
        self._tcp.close()
        self._udp.close()

    def _pump(self) -> None:
        while not self._closed.is_set():
            try:
                packet = self._udp.recv(65536)
            except (TimeoutError, OSError):
                continue
            self._last_packet = time.monotonic()
            framed = b"$\x00" + len(packet).to_bytes(2, "big") + packet
            with self._lock:
                clients = list(self._playing.values())
            for conn, lock in clients:
                try:
                    with lock:
                        conn.sendall(framed)
                except OSError:
                    continue

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._tcp.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def wait_live(self, timeout: float) -> None:
        """Wait until ffmpeg's packets arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self._last_packet > 0.5:
            if time.monotonic() > deadline:
                raise TimeoutError("ffmpeg sent no RTP packet")
            time.sleep(0.05)

    def _serve(self, conn: socket.socket) -> None:
        lock, buffer = threading.Lock(), b""
        try:
            while chunk := conn.recv(4096):
                head, buffer = self._split(buffer + chunk)
                while head is not None:
                    reply = self._answer(head, conn, lock)
                    with lock:
                        conn.sendall(reply)
                    head, buffer = self._split(buffer)
        except OSError:
            pass
        finally:
            with self._lock:
                self._playing.pop(id(conn), None)
            conn.close()

    @staticmethod
    def _split(buffer: bytes) -> tuple[str | None, bytes]:
        """The next whole request head and the rest; the client's interleaved packets ($ frames) dropped."""
        while buffer[:1] == b"$" and len(buffer) >= 4:
            end = 4 + int.from_bytes(buffer[2:4], "big")
            if len(buffer) < end:
                return None, buffer
            buffer = buffer[end:]
        if buffer[:1] == b"$" or b"\r\n\r\n" not in buffer:
            return None, buffer
        head, rest = buffer.split(b"\r\n\r\n", 1)
        return head.decode(), rest

    def _answer(self, head: str, conn: socket.socket, lock: threading.Lock) -> bytes:
        lines = head.split("\r\n")
        method, url = lines[0].split(" ")[:2]
        fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        headers = {k.strip().lower(): v.strip() for k, v in fields.items()}
        status, extra, body = "200 OK", [f"CSeq: {headers.get('cseq', '0')}"], ""
        if method == "DESCRIBE":
            if time.monotonic() - self._last_packet > 1.0 or not self.sdp.exists():
                status = "404 Not Found"
            else:
                body = re.sub(r"m=video \d+", "m=video 0", self.sdp.read_text()) + "a=control:streamid=0\r\n"
                extra += ["Content-Type: application/sdp", f"Content-Base: {url}/"]
        elif method == "SETUP":
            if "interleaved" not in headers.get("transport", ""):
                status = "461 Unsupported Transport"
            extra += ["Transport: RTP/AVP/TCP;unicast;interleaved=0-1", "Session: 1;timeout=60"]
        elif method == "PLAY":
            with self._lock:
                self._playing[id(conn)] = (conn, lock)
            extra.append("Session: 1")
        elif method == "OPTIONS":
            extra.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")
        extra.append(f"Content-Length: {len(body.encode())}")
        reply = f"RTSP/1.0 {status}\r\n" + "".join(f"{line}\r\n" for line in extra) + "\r\n" + body
        return reply.encode()
